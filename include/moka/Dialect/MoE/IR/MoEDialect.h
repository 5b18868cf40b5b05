//===- MoEDialect.h - The `moe` dialect -------------------------*- C++ -*-===//
//
// Declares the `moe` dialect of moka.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_DIALECT_MOE_IR_MOEDIALECT_H
#define MOKA_DIALECT_MOE_IR_MOEDIALECT_H

#include "mlir/IR/Dialect.h"

#include "moka/Dialect/MoE/IR/MoEOpsDialect.h.inc"

#endif // MOKA_DIALECT_MOE_IR_MOEDIALECT_H
