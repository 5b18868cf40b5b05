//===- Passes.td - Transformations of the `moe` dialect ----*- tablegen -*-===//
//
// Passes that rewrite `moe` operations.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_DIALECT_MOE_TRANSFORMS_PASSES_TD
#define MOKA_DIALECT_MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MoEDecomposeLayersPass : Pass<"moe-decompose-layers"> {
  let summary = "Expand moe.layer into router, dispatch, experts and combine";
  let description = [{
    Rewrites every `moe.layer` as the gate product (a contraction over the
    transposed router weight, f32), `moe.route`, `moe.dispatch`,
    `moe.experts`, `moe.shared_experts` when the layer has shared experts,
    and `moe.combine`, so that later passes see each step.
  }];
  let dependentDialects = [
    "mlir::arith::ArithDialect",
    "mlir::linalg::LinalgDialect",
    "mlir::tensor::TensorDialect",
  ];
}

#endif // MOKA_DIALECT_MOE_TRANSFORMS_PASSES_TD
