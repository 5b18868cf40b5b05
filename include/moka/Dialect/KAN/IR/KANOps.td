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
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def KAN_FloatTensor : RankedTensorOf<[F32, F16, BF16]>;
def KAN_CoefficientTensor : 2DTensorOf<[F32, F16, BF16]>;

def KAN_RationalOp : KAN_Op<"rational", [
    Pure, AllTypesMatch<["input", "result"]>]> {
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

#endif // MOKA_DIALECT_KAN_IR_KANOPS_TD
