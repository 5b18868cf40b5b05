//===- Passes.h - Transformations of the `kan` dialect ----------*- C++ -*-===//
//
// Declares the passes of the `kan` dialect.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_DIALECT_KAN_TRANSFORMS_PASSES_H
#define MOKA_DIALECT_KAN_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"

namespace moka::kan {

#define GEN_PASS_DECL
#define GEN_PASS_REGISTRATION
#include "moka/Dialect/KAN/Transforms/Passes.h.inc"

} // namespace moka::kan

#endif // MOKA_DIALECT_KAN_TRANSFORMS_PASSES_H
