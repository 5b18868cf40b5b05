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

    `kan.rational_grad` computes `dx` element-wise the same way. The
    coefficient gradients are reduced in two steps: an `scf.forall` over
    fixed blocks of 64 rows of the flattened input writes one partial sum per
    block, group, coefficient and channel lane (up to 16 lanes, the largest
    power of two dividing `C/G`), and one reduction adds the partials in a
    fixed order. The partition depends only on the shape, so the result is
    bit-identical for any thread count; there are no atomics.
  }];
  let dependentDialects = [
    "mlir::affine::AffineDialect",
    "mlir::arith::ArithDialect",
    "mlir::cf::ControlFlowDialect",
    "mlir::scf::SCFDialect",
    "mlir::linalg::LinalgDialect",
    "mlir::math::MathDialect",
    "mlir::tensor::TensorDialect",
  ];
}

#endif // MOKA_CONVERSION_PASSES_TD
