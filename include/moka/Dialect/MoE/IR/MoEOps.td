//===- MoEOps.td - Mixture-of-experts dialect --------------*- tablegen -*-===//
//
// The `moe` dialect: routing, dispatch, grouped experts and combine.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_DIALECT_MOE_IR_MOEOPS_TD
#define MOKA_DIALECT_MOE_IR_MOEOPS_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/CommonAttrConstraints.td"
include "mlir/IR/CommonTypeConstraints.td"
include "mlir/IR/EnumAttr.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def MoE_Dialect : Dialect {
  let name = "moe";
  let cppNamespace = "::moka::moe";
  let useDefaultAttributePrinterParser = 1;
  let summary = "Mixture-of-experts routing, dispatch, experts and combine";
  let description = [{
    The `moe` dialect represents each step of a mixture-of-experts layer as an
    operation the compiler understands: the router (softmax or sigmoid
    scoring, biased and group-limited top-k, capacity), the dispatch of token
    rows into contiguous per-expert segments, grouped experts over those
    ragged segments, shared experts, and the weighted combine. Generic
    compilers see these as sort, gather and scatter; as ops they can be fused
    (the combine into the down projection's epilogue, scoring with top-k) and
    scheduled so that each expert's weights are read once.

    Operations so far: `moe.route` (the router), `moe.dispatch` (the
    assignments grouped by expert, with capacity dropping), `moe.experts`
    (SwiGLU, GELU or GR-KAN experts over the ragged segments) and `moe.combine` (the
    weighted sum, plus a shared experts' output), `moe.shared_experts`, and
    the composite `moe.layer`, which `moe-decompose-layers` expands into
    them.
  }];
}

class MoE_Op<string mnemonic, list<Trait> traits = []>
    : Op<MoE_Dialect, mnemonic, traits>;

def MoE_Scoring : I32EnumAttr<"Scoring", "router scoring function", [
    I32EnumAttrCase<"softmax", 0>,
    I32EnumAttrCase<"sigmoid", 1>]> {
  let cppNamespace = "::moka::moe";
  let genSpecializedAttr = 0;
}
def MoE_ScoringAttr : EnumAttr<MoE_Dialect, MoE_Scoring, "scoring">;

def MoE_GroupScore : I32EnumAttr<"GroupScore",
    "score of an expert group in group-limited routing", [
    I32EnumAttrCase<"max", 0>,
    I32EnumAttrCase<"top2_sum", 1>]> {
  let cppNamespace = "::moka::moe";
  let genSpecializedAttr = 0;
}
def MoE_GroupScoreAttr : EnumAttr<MoE_Dialect, MoE_GroupScore, "group_score">;

def MoE_RouteOp : MoE_Op<"route", [Pure]> {
  let summary = "Mixture-of-experts router: scoring and top-k selection";
  let description = [{
    Chooses `k` experts for every token row of the router logits
    `logits[T, E]` (`x @ W_gate^T`) and their combine weights:

    1. scores: `softmax(logits)` over the experts (Mixtral, Qwen-MoE,
       DeepSeek-V2) or `sigmoid(logits)` (DeepSeek-V3);
    2. selection keys: the scores plus the optional `bias[E]` (DeepSeek-V3's
       `e_score_correction_bias`), which changes which experts are chosen but
       never their weights;
    3. group-limited selection when `n_group > 1`: the experts form `n_group`
       equal groups; a group's key is the maximum of its members' keys
       (`max`, DeepSeek-V2) or the sum of its two largest (`top2_sum`,
       DeepSeek-V3); only the `topk_group` best groups stay candidates;
    4. top-k of the keys among the candidates, in descending order, ties
       going to the lower expert index;
    5. weights: the chosen experts' scores (without bias), divided by their
       sum when `normalize` (`norm_topk_prob`), times
       `routed_scaling_factor`.

    Results: `weights[T, k]` (f32) and `experts[T, k]` (i32). Arithmetic is
    in f32 whatever the logits' type (f32, f16, bf16).

    Example (DeepSeek-V3's gate):

    ```mlir
    %w, %e = moe.route %logits bias(%b : tensor<256xf32>)
        {k = 8 : i64, scoring = #moe<scoring sigmoid>, n_group = 8 : i64,
         topk_group = 4 : i64, group_score = #moe<group_score top2_sum>,
         normalize = true, routed_scaling_factor = 2.5 : f64}
        : tensor<?x256xf32> -> tensor<?x8xf32>, tensor<?x8xi32>
    ```
  }];

  let arguments = (ins
    RankedTensorOf<[F32, F16, BF16]>:$logits,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$bias,
    I64Attr:$k,
    DefaultValuedAttr<MoE_ScoringAttr, "::moka::moe::Scoring::softmax">:
        $scoring,
    DefaultValuedAttr<I64Attr, "1">:$n_group,
    DefaultValuedAttr<I64Attr, "1">:$topk_group,
    DefaultValuedAttr<MoE_GroupScoreAttr, "::moka::moe::GroupScore::max">:
        $group_score,
    DefaultValuedAttr<BoolAttr, "false">:$normalize,
    DefaultValuedAttr<F64Attr, "1.0">:$routed_scaling_factor);
  let results = (outs RankedTensorOf<[F32]>:$weights,
                      RankedTensorOf<[I32]>:$experts);

  let assemblyFormat = [{
    $logits (`bias` `(` $bias^ `:` type($bias) `)`)? attr-dict `:`
    type($logits) `->` type($weights) `,` type($experts)
  }];

  let extraClassDeclaration = [{
    int64_t getNumExperts() {
      return getLogits().getType().getDimSize(1);
    }
  }];

  let hasVerifier = 1;
}

def MoE_DispatchOp : MoE_Op<"dispatch", [Pure]> {
  let summary = "Groups the routed (token, slot) assignments by expert";
  let description = [{
    Takes the experts chosen for each token, `experts[T, k]` (from
    `moe.route`), and lays the `T * k` assignments out expert by expert: a
    stable counting sort in (token, slot) order. Results:

    - `rows[T * k]`: the token of each permuted row; rows past the last
      kept assignment are -1;
    - `offsets[E + 1]`: expert `e` owns permuted rows
      `[offsets[e], offsets[e + 1])`;
    - `slots[T, k]`: the permuted row of each assignment (the inverse
      permutation), -1 when it was dropped.

    With `capacity_factor`, each expert keeps at most
    `ceil(capacity_factor * T * k / E)` assignments, the first ones in token
    order (GShard, Switch); the rest are dropped and contribute nothing.
    Without it, routing is dropless. An expert index outside `[0, E)` is a
    run-time error.

    ```mlir
    %rows, %offsets, %slots = moe.dispatch %experts {num_experts = 8 : i64}
        : tensor<?x2xi32> -> tensor<?xi32>, tensor<9xi32>, tensor<?x2xi32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[I32]>:$experts,
                       I64Attr:$num_experts,
                       OptionalAttr<F64Attr>:$capacity_factor);
  let results = (outs RankedTensorOf<[I32]>:$rows,
                      RankedTensorOf<[I32]>:$offsets,
                      RankedTensorOf<[I32]>:$slots);
  let assemblyFormat = [{
    $experts attr-dict `:` type($experts) `->` type($rows) `,`
    type($offsets) `,` type($slots)
  }];
  let hasVerifier = 1;
}

def MoE_ExpertKind : I32EnumAttr<"ExpertKind", "expert function", [
    I32EnumAttrCase<"swiglu", 0>,
    I32EnumAttrCase<"gelu", 1>,
    I32EnumAttrCase<"kan", 2>]> {
  let cppNamespace = "::moka::moe";
  let genSpecializedAttr = 0;
}
def MoE_ExpertKindAttr : EnumAttr<MoE_Dialect, MoE_ExpertKind, "expert">;

def MoE_ExpertsOp : MoE_Op<"experts", [Pure, AttrSizedOperandSegments]> {
  let summary = "Grouped experts over the ragged segments of a dispatch";
  let description = [{
    Runs every expert on its segment of permuted rows: permuted row `r`
    holds token `rows[r]` of `x[T, d]` (gathered as it is read, never copied
    into a permuted tensor) and belongs to the expert `e` with
    `offsets[e] <= r < offsets[e + 1]`. Results `y[T * k, d]`, one per
    permuted row (zero for rows past the last segment). The offsets rise
    from `offsets[0] = 0` to at most the number of rows, and every row of
    the segments is a token of `x`: checked at run time unless `rows` and
    `offsets` come from `moe.dispatch`.

    Expert functions, weights stacked over experts:

    - `swiglu` (Mixtral, DeepSeek, Qwen): `w1[E, f, d]` (gate),
      `w3[E, f, d]` (up), `w2[E, d, f]` (down):
      `y = (silu(x w1^T) * (x w3^T)) w2^T`;
    - `gelu`: `w1[E, f, d]`, `w2[E, d, f]`, no `w3`:
      `y = gelu(x w1^T) w2^T` (exact erf GELU);
    - `kan`: a GR-KAN expert, KAT's feed-forward block per expert,
      `y = rational2(rational1(x) w1^T) w2^T`, with
      `rationals(a1, b1, a2, b2)` the stacked coefficients of
      `kan.rational` (`a1[E, G1, m1 + 1]`, `b1[E, G1, n1]` over the `d`
      input channels, `a2[E, G2, m2 + 1]`, `b2[E, G2, n2]` over the `f`
      hidden channels; f32 or the input's type). MoE and KAN compose: each
      expert's activations are `kan.rational` ops on its segment.

    Arithmetic and accumulation are in f32.

    ```mlir
    %y = moe.experts swiglu %x, %rows, %offsets, %w1, %w2 up(%w3 : tensor<8x2048x1024xf32>)
        : tensor<?x1024xf32>, tensor<?xi32>, tensor<9xi32>,
          tensor<8x2048x1024xf32>, tensor<8x1024x2048xf32> -> tensor<?x1024xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32, F16, BF16]>:$input,
                       RankedTensorOf<[I32]>:$rows,
                       RankedTensorOf<[I32]>:$offsets,
                       RankedTensorOf<[F32, F16, BF16]>:$w1,
                       RankedTensorOf<[F32, F16, BF16]>:$w2,
                       Optional<RankedTensorOf<[F32, F16, BF16]>>:$w3,
                       Optional<RankedTensorOf<[F32, F16, BF16]>>:$a1,
                       Optional<RankedTensorOf<[F32, F16, BF16]>>:$b1,
                       Optional<RankedTensorOf<[F32, F16, BF16]>>:$a2,
                       Optional<RankedTensorOf<[F32, F16, BF16]>>:$b2,
                       MoE_ExpertKindAttr:$kind);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = [{
    $kind $input `,` $rows `,` $offsets `,` $w1 `,` $w2
    (`up` `(` $w3^ `:` type($w3) `)`)?
    (`rationals` `(` $a1^ `,` $b1 `,` $a2 `,` $b2 `:` type($a1) `,`
      type($b1) `,` type($a2) `,` type($b2) `)`)?
    attr-dict `:` type($input) `,`
    type($rows) `,` type($offsets) `,` type($w1) `,` type($w2) `->`
    type($result)
  }];
  let hasVerifier = 1;
}

def MoE_CombineOp : MoE_Op<"combine", [Pure]> {
  let summary = "Weighted sum of each token's expert outputs";
  let description = [{
    `out[t] = sum_s weights[t, s] * y[slots[t, s]]` over the `k` slots of
    each token (a slot of -1, a dropped assignment, contributes nothing),
    plus `shared[t]` when given (the shared experts' output). A slot past
    the rows of `y` is a run-time error (not checked when the slots come
    from the `moe.dispatch` whose rows `moe.experts` turned into `y`).

    ```mlir
    %out = moe.combine %y, %slots, %weights
        : tensor<?x1024xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x1024xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$expert_outputs,
                       RankedTensorOf<[I32]>:$slots,
                       RankedTensorOf<[F32]>:$weights,
                       Optional<RankedTensorOf<[F32]>>:$shared);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = [{
    $expert_outputs `,` $slots `,` $weights
    (`shared` `(` $shared^ `:` type($shared) `)`)? attr-dict `:`
    type($expert_outputs) `,` type($slots) `,` type($weights) `->`
    type($result)
  }];
  let hasVerifier = 1;
}

def MoE_SharedExpertsOp : MoE_Op<"shared_experts", [
    Pure, AttrSizedOperandSegments]> {
  let summary = "Always-on experts applied to every token";
  let description = [{
    DeepSeekMoE's shared experts (`K_s` experts concatenated into one MLP of
    intermediate size `K_s * f`, as HF transformers stores them) or
    Qwen2-MoE's gated shared expert: the expert function of `moe.experts`
    with unstacked weights `w1[f, d]`, `w2[d, f]` (and `w3[f, d]` for
    SwiGLU) on every row of `x[T, d]`, times `sigmoid(x @ gate^T)` when a
    `gate[1, d]` is given. f32 result.

    ```mlir
    %s = moe.shared_experts swiglu %x, %w1, %w2 up(%w3 : tensor<2048x1024xf32>)
        gate(%g : tensor<1x1024xf32>)
        : tensor<?x1024xf32>, tensor<2048x1024xf32>, tensor<1024x2048xf32>
          -> tensor<?x1024xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32, F16, BF16]>:$input,
                       RankedTensorOf<[F32, F16, BF16]>:$w1,
                       RankedTensorOf<[F32, F16, BF16]>:$w2,
                       Optional<RankedTensorOf<[F32, F16, BF16]>>:$w3,
                       Optional<RankedTensorOf<[F32, F16, BF16]>>:$gate,
                       MoE_ExpertKindAttr:$kind);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = [{
    $kind $input `,` $w1 `,` $w2 (`up` `(` $w3^ `:` type($w3) `)`)?
    (`gate` `(` $gate^ `:` type($gate) `)`)? attr-dict `:` type($input) `,`
    type($w1) `,` type($w2) `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoE_LayerOp : MoE_Op<"layer", [Pure, AttrSizedOperandSegments]> {
  let summary = "A whole mixture-of-experts layer";
  let description = [{
    One op for a mixture-of-experts layer, which `moe-decompose-layers`
    expands into its parts so that every later pass sees them:

    ```
    logits = x @ gate^T                                  (gate: [E, d])
    w, i   = moe.route logits [bias]      {k, scoring, n_group, topk_group,
                                           group_score, normalize,
                                           routed_scaling_factor}
    rows, offsets, slots = moe.dispatch i {capacity_factor}
    y      = moe.experts kind x, rows, offsets, w1, w2 [up(w3)]
    s      = moe.shared_experts kind x, shared...    (when shared weights)
    out    = moe.combine y, slots, w [shared(s)]
    ```

    Operands: `x[T, d]`, `gate[E, d]` (HF's router weight), the routed
    experts' stacks `w1[E, f, d]`, `w2[E, d, f]`, `up(w3[E, f, d])` for
    SwiGLU, optional `bias(b[E])`, optional shared experts
    `shared(s1[fs, d], s2[d, fs])` with `shared_up(s3[fs, d])` for SwiGLU
    and `shared_gate(g[1, d])` (Qwen2-MoE). Attributes: those of `moe.route`
    and `moe.dispatch`. f32 result.

    ```mlir
    %y = moe.layer swiglu %x, %gate, %w1, %w2 up(%w3 : tensor<8x2048x1024xf32>)
        {k = 2 : i64, normalize = true}
        : tensor<?x1024xf32>, tensor<8x1024xf32>, tensor<8x2048x1024xf32>,
          tensor<8x1024x2048xf32> -> tensor<?x1024xf32>
    ```
  }];
  let arguments = (ins
    RankedTensorOf<[F32, F16, BF16]>:$input,
    RankedTensorOf<[F32, F16, BF16]>:$gate,
    RankedTensorOf<[F32, F16, BF16]>:$w1,
    RankedTensorOf<[F32, F16, BF16]>:$w2,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$w3,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$bias,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$shared_w1,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$shared_w2,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$shared_w3,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$shared_gate,
    MoE_ExpertKindAttr:$kind,
    I64Attr:$k,
    DefaultValuedAttr<MoE_ScoringAttr, "::moka::moe::Scoring::softmax">:
        $scoring,
    DefaultValuedAttr<I64Attr, "1">:$n_group,
    DefaultValuedAttr<I64Attr, "1">:$topk_group,
    DefaultValuedAttr<MoE_GroupScoreAttr, "::moka::moe::GroupScore::max">:
        $group_score,
    DefaultValuedAttr<BoolAttr, "false">:$normalize,
    DefaultValuedAttr<F64Attr, "1.0">:$routed_scaling_factor,
    OptionalAttr<F64Attr>:$capacity_factor);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = [{
    $kind $input `,` $gate `,` $w1 `,` $w2
    (`up` `(` $w3^ `:` type($w3) `)`)?
    (`bias` `(` $bias^ `:` type($bias) `)`)?
    (`shared` `(` $shared_w1^ `,` $shared_w2 `:` type($shared_w1) `,`
      type($shared_w2) `)`)?
    (`shared_up` `(` $shared_w3^ `:` type($shared_w3) `)`)?
    (`shared_gate` `(` $shared_gate^ `:` type($shared_gate) `)`)?
    attr-dict `:` type($input) `,` type($gate) `,` type($w1) `,` type($w2)
    `->` type($result)
  }];
  let hasVerifier = 1;
}

#endif // MOKA_DIALECT_MOE_IR_MOEOPS_TD
