//===- MoEOps.td - Mixture-of-experts dialect --------------*- tablegen -*-===//
//
// The `moe` dialect: routing, dispatch, grouped experts and combine.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_DIALECT_MOE_IR_MOEOPS_TD
#define MOKA_DIALECT_MOE_IR_MOEOPS_TD

include "mlir/IR/OpBase.td"

def MoE_Dialect : Dialect {
  let name = "moe";
  let cppNamespace = "::moka::moe";
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

    The dialect is registered with every moka tool; its operations are being
    added.
  }];
}

#endif // MOKA_DIALECT_MOE_IR_MOEOPS_TD
