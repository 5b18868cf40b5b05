//===- Passes.td - moka conversion passes ------------------*- tablegen -*-===//
//
// Conversions from moka's dialects to upstream MLIR dialects.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_CONVERSION_PASSES_TD
#define MOKA_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertKANToLinalgPass : Pass<"convert-kan-to-linalg"> {
  let summary = "Lower `kan` operations to `linalg` on tensors";
  let description = [{
    Rewrites every `kan` operation as `linalg.generic` operations on tensors.

    `kan.rational` reshapes its channels-last input `[..., C]` to
    `[..., G, C/G]` (a view, no copy), prepares the coefficients
    once (`f32`, absolute value of the denominator) and applies the rational
    in one all-parallel `linalg.generic` whose coefficient operands are
    indexed by the group dimension only. When `C` is dynamic, a `cf.assert`
    checks `C % G == 0` at run time.
  }];
  let dependentDialects = [
    "mlir::arith::ArithDialect",
    "mlir::cf::ControlFlowDialect",
    "mlir::linalg::LinalgDialect",
    "mlir::math::MathDialect",
    "mlir::tensor::TensorDialect",
  ];
}

#endif // MOKA_CONVERSION_PASSES_TD
