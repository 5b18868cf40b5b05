//===- Passes.h - Transformations of the `kv` dialect -----------*- C++ -*-===//
//
// Declares the passes of the `kv` dialect.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_DIALECT_KV_TRANSFORMS_PASSES_H
#define MOKA_DIALECT_KV_TRANSFORMS_PASSES_H

#include "mlir/Pass/Pass.h"

namespace moka::kv {

#define GEN_PASS_DECL
#define GEN_PASS_REGISTRATION
#include "moka/Dialect/KV/Transforms/Passes.h.inc"

} // namespace moka::kv

#endif // MOKA_DIALECT_KV_TRANSFORMS_PASSES_H
