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

    Operations so far: `moe.route`, the router. Dispatch, grouped experts,
    shared experts, combine and the composite layer are being added.
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

#endif // MOKA_DIALECT_MOE_IR_MOEOPS_TD
