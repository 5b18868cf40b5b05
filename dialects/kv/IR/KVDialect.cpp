//===- KVDialect.cpp - The `kv` dialect -----------------------------------===//
//
// Registers the `kv` dialect.
//
//===----------------------------------------------------------------------===//

#include "moka/Dialect/KV/IR/KVDialect.h"

using namespace mlir;
using namespace moka::kv;

#include "moka/Dialect/KV/IR/KVOpsDialect.cpp.inc"

void KVDialect::initialize() {}
