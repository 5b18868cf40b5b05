//===- Passes.h - Transformations of the `moe` dialect ----------*- C++ -*-===//
//
// Declares the passes of the `moe` dialect.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_DIALECT_MOE_TRANSFORMS_PASSES_H
#define MOKA_DIALECT_MOE_TRANSFORMS_PASSES_H

#include "mlir/Pass/Pass.h"

namespace moka::moe {

#define GEN_PASS_DECL
#define GEN_PASS_REGISTRATION
#include "moka/Dialect/MoE/Transforms/Passes.h.inc"

} // namespace moka::moe

#endif // MOKA_DIALECT_MOE_TRANSFORMS_PASSES_H
