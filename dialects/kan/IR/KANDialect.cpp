//===- KANDialect.cpp - The `kan` dialect ---------------------------------===//
//
// Registers the `kan` dialect and its operations.
//
//===----------------------------------------------------------------------===//

#include "moka/Dialect/KAN/IR/KANDialect.h"
#include "moka/Dialect/KAN/IR/KANOps.h"

using namespace mlir;
using namespace moka::kan;

#include "moka/Dialect/KAN/IR/KANOpsDialect.cpp.inc"

void KANDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "moka/Dialect/KAN/IR/KANOps.cpp.inc"
      >();
}
