//===- KVOps.h - Types and operations of the `kv` dialect -------*- C++ -*-===//
//
// Declares the cache type and the operations of the `kv` dialect.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_DIALECT_KV_IR_KVOPS_H
#define MOKA_DIALECT_KV_IR_KVOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "moka/Dialect/KV/IR/KVDialect.h"

#define GET_TYPEDEF_CLASSES
#include "moka/Dialect/KV/IR/KVOpsTypes.h.inc"

#define GET_OP_CLASSES
#include "moka/Dialect/KV/IR/KVOps.h.inc"

#endif // MOKA_DIALECT_KV_IR_KVOPS_H
