//===- KVDialect.h - The `kv` dialect ---------------------------*- C++ -*-===//
//
// Declares the `kv` dialect of moka.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_DIALECT_KV_IR_KVDIALECT_H
#define MOKA_DIALECT_KV_IR_KVDIALECT_H

#include "mlir/IR/Dialect.h"

#include "moka/Dialect/KV/IR/KVOpsDialect.h.inc"

#endif // MOKA_DIALECT_KV_IR_KVDIALECT_H
