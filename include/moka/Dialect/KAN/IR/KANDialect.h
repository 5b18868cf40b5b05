//===- KANDialect.h - The `kan` dialect -------------------------*- C++ -*-===//
//
// Declares the `kan` dialect of moka.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_DIALECT_KAN_IR_KANDIALECT_H
#define MOKA_DIALECT_KAN_IR_KANDIALECT_H

#include "mlir/IR/Dialect.h"

#include "moka/Dialect/KAN/IR/KANOpsDialect.h.inc"

#endif // MOKA_DIALECT_KAN_IR_KANDIALECT_H
