//===- Passes.td - Transformations of the `kan` dialect ----*- tablegen -*-===//
//
// Passes that rewrite and fuse `kan` operations.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_DIALECT_KAN_TRANSFORMS_PASSES_TD
#define MOKA_DIALECT_KAN_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def KANExpandLayersPass : Pass<"kan-expand-layers"> {
  let summary = "Expand kan.layer into its basis expansion and matrix products";
  let description = [{
    Rewrites every `kan.layer` as the operations it is made of, on tensors:

    - the basis expansion: `kan.rational` for the rational basis, an
      all-parallel `linalg.generic` producing `phi[..., Cin, K]` (in `f32`)
      for the others, and `silu(x)` for a base branch;
    - one contraction (`linalg.generic` with reduction iterators, `f32`
      accumulator) per branch, chained through their destination operands,
      starting from the broadcast bias or zero;
    - a final rounding to the element type for `f16` and `bf16`;
    - `cf.assert` run-time checks of the dimensions that must agree but are
      dynamic (weight, bias and base weight against the input and each
      other).

    The basis expansions are element-wise producers of the contractions, the
    shape `kan-fuse-into-contractions` fuses into their operand loads.

    The contractions read the weights with output channels innermost: as
    contiguous panels `[Cout / P, Cin(, K), P]` of `weight-panel` channels
    when `P` divides a static `Cout` (the accumulator is viewed as
    `[..., Cout / P, P]`), otherwise as the transpose `[Cin(, K), Cout]`. A
    register tile of output channels then streams through memory.
  }];
  let options = [
    Option<"weightPanel", "weight-panel", "int64_t", /*default=*/"32",
           "Output channels per contiguous weight panel (0: plain transpose)">,
  ];
  let dependentDialects = [
    "mlir::arith::ArithDialect",
    "mlir::cf::ControlFlowDialect",
    "mlir::linalg::LinalgDialect",
    "mlir::math::MathDialect",
    "mlir::tensor::TensorDialect",
  ];
}

def KANFuseIntoContractionsPass
    : Pass<"kan-fuse-into-contractions", "mlir::func::FuncOp"> {
  let summary = "Fuse KAN activations into the matrix products around them";
  let description = [{
    Tiles every contraction (a `linalg` op with reduction iterators) that
    ends a chain (is not itself consumed by a rational or another
    contraction) along its rows (the parallel loops shared by its output and
    its first input) with `scf.forall`, and fuses into the tile, through
    `TilingInterface` (upstream tile-and-fuse), the producers sliced along
    those rows: element-wise KAN activations (`kan.rational`, or all-parallel
    `linalg.generic`s such as the basis expansions of `kan-expand-layers`)
    and the broadcast bias. Each tile computes the activation of its own rows
    right before the matrix product reads them, so the full activation tensor
    is never written to memory. Producers read at constant offsets (weights)
    and producers with other users are not fused.

    A `kan.rational` whose input is produced by a contraction (KAT's
    `fc1 -> rational`) takes that contraction into the same tile as its
    epilogue; a chain `fc1 -> rational -> fc2` becomes one loop nest in which
    the hidden activation exists one tile at a time.

    Operations that are already inside an `scf.forall` are left alone.
  }];
  let options = [
    Option<"rowTile", "row-tile", "int64_t", /*default=*/"32",
           "Rows (leading parallel iterations) per fused tile">,
  ];
  let dependentDialects = [
    "mlir::affine::AffineDialect",
    "mlir::arith::ArithDialect",
    "mlir::linalg::LinalgDialect",
    "mlir::scf::SCFDialect",
    "mlir::tensor::TensorDialect",
  ];
}

#endif // MOKA_DIALECT_KAN_TRANSFORMS_PASSES_TD
