//===- KANOps.h - Operations of the `kan` dialect ---------------*- C++ -*-===//
//
// Declares the operations of the `kan` dialect.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_DIALECT_KAN_IR_KANOPS_H
#define MOKA_DIALECT_KAN_IR_KANOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "moka/Dialect/KAN/IR/KANDialect.h"

#include "moka/Dialect/KAN/IR/KANEnums.h.inc"

#define GET_OP_CLASSES
#include "moka/Dialect/KAN/IR/KANOps.h.inc"

#endif // MOKA_DIALECT_KAN_IR_KANOPS_H
