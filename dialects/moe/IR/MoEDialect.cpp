//===- MoEDialect.cpp - The `moe` dialect ---------------------------------===//
//
// Registers the `moe` dialect.
//
//===----------------------------------------------------------------------===//

#include "moka/Dialect/MoE/IR/MoEDialect.h"

using namespace mlir;
using namespace moka::moe;

#include "moka/Dialect/MoE/IR/MoEOpsDialect.cpp.inc"

void MoEDialect::initialize() {}
