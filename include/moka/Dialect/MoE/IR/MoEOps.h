//===- MoEOps.h - Operations of the `moe` dialect ---------------*- C++ -*-===//
//
// Declares the operations of the `moe` dialect.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_DIALECT_MOE_IR_MOEOPS_H
#define MOKA_DIALECT_MOE_IR_MOEOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "moka/Dialect/MoE/IR/MoEDialect.h"

#include "moka/Dialect/MoE/IR/MoEEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "moka/Dialect/MoE/IR/MoEAttrs.h.inc"

#define GET_OP_CLASSES
#include "moka/Dialect/MoE/IR/MoEOps.h.inc"

#endif // MOKA_DIALECT_MOE_IR_MOEOPS_H
