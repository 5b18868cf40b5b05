//===- MoEDialect.cpp - The `moe` dialect ---------------------------------===//
//
// Registers the `moe` dialect, its attributes and its operations.
//
//===----------------------------------------------------------------------===//

#include "moka/Dialect/MoE/IR/MoEDialect.h"
#include "moka/Dialect/MoE/IR/MoEOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace moka::moe;

#include "moka/Dialect/MoE/IR/MoEOpsDialect.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "moka/Dialect/MoE/IR/MoEAttrs.cpp.inc"

void MoEDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "moka/Dialect/MoE/IR/MoEAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "moka/Dialect/MoE/IR/MoEOps.cpp.inc"
      >();
}
