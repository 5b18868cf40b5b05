//===- Passes.td - Transformations of the `kv` dialect -----*- tablegen -*-===//
//
// Passes that rewrite `kv` operations.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_DIALECT_KV_TRANSFORMS_PASSES_TD
#define MOKA_DIALECT_KV_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def KVAbsorbLatentProjectionsPass : Pass<"kv-absorb-latent-projections"> {
  let summary = "Attend on a latent cache directly (MLA's absorbed form)";
  let description = [{
    With keys `K = c up_k` and values `V = c up_v` reconstructed from a
    latent `c[B, S, r]`, `q K^T = (q up_k^T) c^T` and `softmax(.) V =
    (softmax(.) c) up_v`. This pass rewrites
    `kv.decode_attention %q, %cache up(%up_k, %up_v)` as

    1. `q' = q up_k^T` per head (`[B, H, r]`, a contraction over `D`),
    2. `kv.decode_attention %q', %cache` on the latent itself, with the
       original scale `1/sqrt(D)`,
    3. `o = o' up_v` per head (a contraction over `r`),

    so attention reads `r` numbers per token instead of reconstructing
    `2 H D`: the keys and values are never materialized.
  }];
  let dependentDialects = [
    "mlir::arith::ArithDialect",
    "mlir::linalg::LinalgDialect",
    "mlir::tensor::TensorDialect",
  ];
}

#endif // MOKA_DIALECT_KV_TRANSFORMS_PASSES_TD
