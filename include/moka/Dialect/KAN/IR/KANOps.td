//===- KANOps.td - KAN dialect operations ------------------*- tablegen -*-===//
//
// Operations of the `kan` dialect.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_DIALECT_KAN_IR_KANOPS_TD
#define MOKA_DIALECT_KAN_IR_KANOPS_TD

include "moka/Dialect/KAN/IR/KANDialect.td"
include "mlir/IR/CommonAttrConstraints.td"
include "mlir/IR/CommonTypeConstraints.td"
include "mlir/IR/EnumAttr.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def KAN_FloatTensor : RankedTensorOf<[F32, F16, BF16]>;
def KAN_CoefficientTensor : 2DTensorOf<[F32, F16, BF16]>;

def KAN_Basis : I32EnumAttr<"Basis", "basis of a KAN layer", [
    I32EnumAttrCase<"rational", 0>,
    I32EnumAttrCase<"bspline", 1>,
    I32EnumAttrCase<"rbf", 2>,
    I32EnumAttrCase<"chebyshev", 3>,
    I32EnumAttrCase<"fourier", 4>]> {
  let cppNamespace = "::moka::kan";
}

def KAN_RationalOp : KAN_Op<"rational", [
    Pure, AllTypesMatch<["input", "result"]>,
    DeclareOpInterfaceMethods<ReifyRankedShapedTypeOpInterface,
                              ["reifyResultShapes"]>]> {
  let summary = "Group-rational activation (KAT's GR-KAN)";
  let description = [{
    Applies a learnable rational function to every element of a channels-last
    tensor `input[..., C]`. The `C` channels are split into `G` equal groups;
    channel `c` belongs to group `g = c / (C / G)` and uses that group's
    coefficients:

    ```
    P_g(x) = sum_{i=0..m} numerator[g, i] * x^i
    Q_g(x) = 1 + sum_{j=1..n} |denominator[g, j-1]| * |x|^j
    y      = P_g(x) / Q_g(x)
    ```

    `numerator` has shape `[G, m+1]`, or `[1, m+1]` when one numerator is
    shared by all groups; `denominator` has shape `[G, n]` and fixes `G`. The
    degrees `m` and `n` (defaults 5 and 4, those of the KAT reference model)
    are attributes and must agree with the coefficient shapes. Since `Q >= 1`
    there is no division by zero.

    `input` may have any rank of at least one and static or dynamic
    dimensions; the coefficient shapes must be static. Elements are `f32`,
    `f16` or `bf16`; arithmetic is done in `f32` (Horner's rule) and rounded
    to the element type once. The coefficients have the element type of
    `input`, or `f32`. When `C` is dynamic, `C % G == 0` is checked at run
    time.

    Example:

    ```mlir
    %y = kan.rational %x, %a, %b
        : tensor<?x197x3072xf32>, tensor<8x6xf32>, tensor<8x4xf32>
    %z = kan.rational %h, %a3, %b2 {m = 3 : i64, n = 2 : i64}
        : tensor<16x64xbf16>, tensor<1x4xf32>, tensor<4x2xf32>
    ```
  }];

  let arguments = (ins
    KAN_FloatTensor:$input,
    KAN_CoefficientTensor:$numerator,
    KAN_CoefficientTensor:$denominator,
    DefaultValuedAttr<ConfinedAttr<I64Attr, [IntMinValue<0>, IntMaxValue<16>]>,
                      "5">:$m,
    DefaultValuedAttr<ConfinedAttr<I64Attr, [IntMinValue<0>, IntMaxValue<16>]>,
                      "4">:$n);
  let results = (outs KAN_FloatTensor:$result);

  let assemblyFormat = [{
    $input `,` $numerator `,` $denominator attr-dict `:` type($input) `,`
    type($numerator) `,` type($denominator)
  }];

  let extraClassDeclaration = [{
    /// Number of channel groups `G` (the leading dimension of the
    /// denominator).
    int64_t getNumGroups() {
      return getDenominator().getType().getDimSize(0);
    }
    /// True when one numerator row is broadcast over all groups.
    bool hasSharedNumerator() {
      return getNumerator().getType().getDimSize(0) == 1 &&
             getNumGroups() != 1;
    }
  }];

  let hasVerifier = 1;
}

def KAN_RationalGradOp : KAN_Op<"rational_grad", [
    Pure, AllTypesMatch<["input", "grad_output", "grad_input"]>,
    AllTypesMatch<["numerator", "grad_numerator"]>,
    AllTypesMatch<["denominator", "grad_denominator"]>]> {
  let summary = "Gradients of the group-rational activation";
  let description = [{
    Given the input `x` of a `kan.rational` with the same coefficients and
    attributes, and the gradient `dy` of a loss with respect to its result,
    computes the gradients with respect to the input and to both coefficient
    tensors (`R = dP/dx`, `S = dQ/dx`):

    ```
    dx        = dy * (R/Q - P*S/Q^2)
    da[g, i]  = sum over the elements of group g of dy * x^i / Q
    db[g, j]  = sum over the elements of group g of
                dy * (-P/Q^2) * sign(b[g, j]) * |x|^(j+1)
    ```

    With a shared numerator (`[1, m+1]`), `da` sums over all groups.

    The coefficient gradients are reductions over the whole batch. They are
    computed as partial sums over fixed blocks of rows, whose layout depends
    only on the shape, and the partials are then added in a fixed order, in
    f64, and rounded once: no atomics, and the result is bit-identical from
    run to run and for any number of threads. Other arithmetic is in `f32`.

    Example:

    ```mlir
    %dx, %da, %db = kan.rational_grad %x, %dy, %a, %b
        : tensor<?x3072xf32>, tensor<8x6xf32>, tensor<8x4xf32>
    ```
  }];

  let arguments = (ins
    KAN_FloatTensor:$input,
    KAN_FloatTensor:$grad_output,
    KAN_CoefficientTensor:$numerator,
    KAN_CoefficientTensor:$denominator,
    DefaultValuedAttr<ConfinedAttr<I64Attr, [IntMinValue<0>, IntMaxValue<16>]>,
                      "5">:$m,
    DefaultValuedAttr<ConfinedAttr<I64Attr, [IntMinValue<0>, IntMaxValue<16>]>,
                      "4">:$n);
  let results = (outs KAN_FloatTensor:$grad_input,
                      KAN_CoefficientTensor:$grad_numerator,
                      KAN_CoefficientTensor:$grad_denominator);

  let assemblyFormat = [{
    $input `,` $grad_output `,` $numerator `,` $denominator attr-dict `:`
    type($input) `,` type($numerator) `,` type($denominator)
  }];

  let extraClassDeclaration = [{
    int64_t getNumGroups() {
      return getDenominator().getType().getDimSize(0);
    }
    bool hasSharedNumerator() {
      return getNumerator().getType().getDimSize(0) == 1 &&
             getNumGroups() != 1;
    }
  }];

  let hasVerifier = 1;
}

def KAN_LayerOp : KAN_Op<"layer", [
    Pure, AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<ReifyRankedShapedTypeOpInterface,
                              ["reifyResultShapes"]>]> {
  let summary = "KAN layer: a basis expansion followed by a matrix product";
  let description = [{
    Computes, for a channels-last input `x[..., Cin]`,

    ```
    y[..., o] = sum_{i, k} phi_k(x[..., i]) * weight[o, i, k]
              + sum_i silu(x[..., i]) * base_weight[o, i]    (if present)
              + bias[o]                                      (if present)
    ```

    with the basis functions `phi_k` chosen by `basis`:

    - `rational` (KAT's GR-KAN): one function per input, the group-rational
      activation of `kan.rational` given by `coefficients(numerator,
      denominator)`; `weight` is `[Cout, Cin]` (the layout of
      `torch.nn.Linear`), so `y = rational(x) @ weight^T + bias`. No base
      branch.
    - `bspline` (efficient-kan): the `K = grid_size + order` B-splines of
      order `order` (default 3) on the uniform grid of `grid_size` (default 5)
      intervals over `[grid_min, grid_max]` (default `[-1, 1]`), extended by
      `order` knots on each side; Cox-de Boor, half-open knot intervals.
    - `rbf` (FastKAN): `K = grid_size` (default 8) Gaussians
      `exp(-((x - c_k) / h)^2)`, centres evenly spaced from `grid_min` to
      `grid_max` (defaults -2, 2), `h = (grid_max - grid_min) / (K - 1)`.
    - `chebyshev` (ChebyKAN): `T_k(tanh x)` for `k = 0..degree` (default 3),
      `K = degree + 1`.
    - `fourier` (FourierKAN): `cos(k x)` for `k = 1..grid_size` followed by
      `sin(k x)` for `k = 1..grid_size` (default 5), `K = 2 * grid_size`.

    For every basis but `rational`, `weight` is `[Cout, Cin, K]` and an
    optional `base_weight[Cout, Cin]` adds efficient-kan's and FastKAN's
    `silu(x) @ base_weight^T` branch. `bias` is `[Cout]`. (efficient-kan's
    `scaled_spline_weight`, ChebyKAN's `cheby_coeffs` transposed to
    `[Cout, Cin, K]`, and FourierKAN's cosine and sine coefficients
    concatenated along `K` are the `weight`; FastKAN's layer norm before the
    basis is a separate op.) The result has the
    shape of `x` with `Cout` channels. Elements are `f32`, `f16` or `bf16`
    (all operands the same); arithmetic and accumulation are in `f32`. (For
    `f16` and `bf16`, the rational basis rounds its activation to the element
    type before the product, as `kan.rational` does and as KAT's kernels do;
    the other bases keep `phi` in `f32`.)

    Example:

    ```mlir
    %y = kan.layer rational %x, %w bias(%b : tensor<768xf32>)
        coefficients(%num, %den : tensor<8x6xf32>, tensor<8x4xf32>)
        : tensor<?x3072xf32>, tensor<768x3072xf32> -> tensor<?x768xf32>
    %z = kan.layer bspline %x, %ws base(%wb : tensor<64x32xf32>)
        {grid_size = 5 : i64, order = 3 : i64}
        : tensor<?x32xf32>, tensor<64x32x8xf32> -> tensor<?x64xf32>
    ```
  }];

  let arguments = (ins
    KAN_FloatTensor:$input,
    KAN_FloatTensor:$weight,
    Optional<KAN_FloatTensor>:$bias,
    Optional<KAN_FloatTensor>:$base_weight,
    Optional<KAN_CoefficientTensor>:$numerator,
    Optional<KAN_CoefficientTensor>:$denominator,
    KAN_Basis:$basis,
    OptionalAttr<I64Attr>:$grid_size,
    OptionalAttr<I64Attr>:$order,
    OptionalAttr<I64Attr>:$degree,
    OptionalAttr<F64Attr>:$grid_min,
    OptionalAttr<F64Attr>:$grid_max);
  let results = (outs KAN_FloatTensor:$result);

  let assemblyFormat = [{
    $basis $input `,` $weight
    (`bias` `(` $bias^ `:` type($bias) `)`)?
    (`base` `(` $base_weight^ `:` type($base_weight) `)`)?
    (`coefficients` `(` $numerator^ `,` $denominator `:` type($numerator) `,`
      type($denominator) `)`)?
    attr-dict `:` type($input) `,` type($weight) `->` type($result)
  }];

  let extraClassDeclaration = [{
    /// Number of basis functions per input channel (`K`).
    int64_t getNumBasisFunctions();
    /// Grid size, spline order and degree with the basis' defaults applied.
    int64_t getEffectiveGridSize();
    int64_t getEffectiveOrder();
    int64_t getEffectiveDegree();
    /// Grid range with the basis' defaults applied.
    double getEffectiveGridMin();
    double getEffectiveGridMax();
    int64_t getInputChannels() {
      ::mlir::RankedTensorType t = getInput().getType();
      return t.getDimSize(t.getRank() - 1);
    }
  }];

  let hasVerifier = 1;
}

#endif // MOKA_DIALECT_KAN_IR_KANOPS_TD
