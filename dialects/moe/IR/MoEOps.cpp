//===- MoEOps.cpp - Operations of the `moe` dialect -----------------------===//
//
// Verifiers of the `moe` operations.
//
//===----------------------------------------------------------------------===//

#include "moka/Dialect/MoE/IR/MoEOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

#include <array>
#include <cmath>
#include <limits>

using namespace mlir;
using namespace moka::moe;

/// True when the sizes `a` and `b` are both static and differ.
static bool differ(int64_t a, int64_t b) {
  return !ShapedType::isDynamic(a) && !ShapedType::isDynamic(b) && a != b;
}

static std::string dimString(int64_t d) {
  return ShapedType::isDynamic(d) ? std::string("?") : std::to_string(d);
}

/// Checks of the routing parameters shared by moe.route and moe.layer.
static LogicalResult verifyRouting(Operation *op, int64_t experts, int64_t k,
                                   int64_t groups, int64_t keep,
                                   GroupScore groupScore, double scale) {
  if (k < 1)
    return op->emitOpError("k must be >= 1, got ") << k;
  if (k > experts)
    return op->emitOpError("k = ")
           << k << " exceeds the number of experts E = " << experts;
  if (groups < 1)
    return op->emitOpError("n_group must be >= 1, got ") << groups;
  if (experts % groups != 0)
    return op->emitOpError("n_group = ")
           << groups
           << " does not divide the number of experts E = " << experts;
  if (keep < 1 || keep > groups)
    return op->emitOpError("topk_group must be in [1, n_group = ")
           << groups << "], got " << keep;
  int64_t perGroup = experts / groups;
  if (k > keep * perGroup)
    return op->emitOpError("k = ") << k << " exceeds the " << keep * perGroup
                                   << " experts left by topk_group = " << keep
                                   << " groups of " << perGroup;
  if (groups > 1 && groupScore == GroupScore::top2_sum && perGroup < 2)
    return op->emitOpError("group_score top2_sum needs at least 2 experts "
                           "per group, got ")
           << perGroup;
  if (!std::isfinite(scale) || scale <= 0)
    return op->emitOpError("routed_scaling_factor must be finite and > 0, got ")
           << scale;
  return success();
}

static LogicalResult verifyCapacity(Operation *op,
                                    std::optional<APFloat> factor) {
  if (!factor)
    return success();
  double v = factor->convertToDouble();
  if (!std::isfinite(v) || v <= 0)
    return op->emitOpError("capacity_factor must be finite and > 0, got ") << v;
  return success();
}

/// Checks of the stacked routed-expert weights shared by moe.experts and
/// moe.layer: w1[E, f, d], w2[E, d, f], w3 like w1 exactly for SwiGLU.
static LogicalResult verifyExpertStacks(Operation *op, ExpertKind kind,
                                        int64_t d, Type elt, Value w1v,
                                        Value w2v, Value w3) {
  auto w1 = cast<RankedTensorType>(w1v.getType());
  auto w2 = cast<RankedTensorType>(w2v.getType());
  for (auto [name, w] :
       {std::pair<StringRef, RankedTensorType>{"w1", w1}, {"w2", w2}})
    if (w.getRank() != 3)
      return op->emitOpError()
             << name << " must be a stack [E, ., .] of expert weights, got "
             << w;
  int64_t e = w1.getDimSize(0), f = w1.getDimSize(1);
  if (ShapedType::isDynamic(e))
    return op->emitOpError("the number of experts (w1's first dimension) "
                           "must be static, got ")
           << w1;
  if (differ(w1.getDimSize(2), d))
    return op->emitOpError("w1 must be [E, f, d] with d = ")
           << dimString(d) << " (the input's), got " << w1;
  if (differ(w2.getDimSize(0), e) || differ(w2.getDimSize(1), d) ||
      differ(w2.getDimSize(2), f))
    return op->emitOpError("w2 must be [E, d, f] = [")
           << e << ", " << dimString(d) << ", " << dimString(f) << "], got "
           << w2;
  if (kind == ExpertKind::swiglu && !w3)
    return op->emitOpError("swiglu experts need the up projection up(w3)");
  if (kind != ExpertKind::swiglu && w3)
    return op->emitOpError("only swiglu experts take an up projection");
  if (w3 && cast<RankedTensorType>(w3.getType()).getShape() != w1.getShape())
    return op->emitOpError("w3 must have the shape of w1 ")
           << w1 << ", got " << w3.getType();
  for (Value w : {w1v, w2v, w3})
    if (w && cast<RankedTensorType>(w.getType()).getElementType() != elt)
      return op->emitOpError(
                 "expert weights must have the input's element type ")
             << elt << ", got " << w.getType();
  return success();
}

/// Checks of the shared experts' weights shared by moe.shared_experts and
/// moe.layer: w1[f, d], w2[d, f], w3 like w1 exactly for SwiGLU, gate
/// [1, d].
static LogicalResult verifySharedWeights(Operation *op, ExpertKind kind,
                                         int64_t d, Type elt, Value w1v,
                                         Value w2v, Value w3, Value gate) {
  auto w1 = cast<RankedTensorType>(w1v.getType());
  auto w2 = cast<RankedTensorType>(w2v.getType());
  if (w1.getRank() != 2 || differ(w1.getDimSize(1), d))
    return op->emitOpError("shared w1 must be [f, d] with d = ")
           << dimString(d) << " (the input's), got " << w1;
  int64_t f = w1.getDimSize(0);
  if (w2.getRank() != 2 || differ(w2.getDimSize(0), d) ||
      differ(w2.getDimSize(1), f))
    return op->emitOpError("shared w2 must be [d, f] = [")
           << dimString(d) << ", " << dimString(f) << "], got " << w2;
  if (kind == ExpertKind::swiglu && !w3)
    return op->emitOpError("swiglu shared experts need their up projection");
  if (kind != ExpertKind::swiglu && w3)
    return op->emitOpError("only swiglu shared experts take an up "
                           "projection");
  if (w3 && cast<RankedTensorType>(w3.getType()).getShape() != w1.getShape())
    return op->emitOpError("shared w3 must have the shape of w1 ")
           << w1 << ", got " << w3.getType();
  if (gate) {
    auto g = cast<RankedTensorType>(gate.getType());
    if (g.getRank() != 2 || g.getDimSize(0) != 1 || differ(g.getDimSize(1), d))
      return op->emitOpError("shared gate must be [1, d] = [1, ")
             << dimString(d) << "], got " << g;
  }
  for (Value w : {w1v, w2v, w3, gate})
    if (w && cast<RankedTensorType>(w.getType()).getElementType() != elt)
      return op->emitOpError("shared weights must have the input's element "
                             "type ")
             << elt << ", got " << w.getType();
  return success();
}

//===----------------------------------------------------------------------===//
// RouteOp
//===----------------------------------------------------------------------===//

LogicalResult RouteOp::verify() {
  RankedTensorType logits = getLogits().getType();
  if (logits.getRank() != 2)
    return emitOpError("logits must be [T, E], got ") << logits;
  int64_t tokens = logits.getDimSize(0);
  int64_t experts = logits.getDimSize(1);
  if (ShapedType::isDynamic(experts))
    return emitOpError("the number of experts E must be static, got ")
           << logits;
  if (experts < 1)
    return emitOpError("needs at least one expert, got E = 0");

  if (failed(verifyRouting(*this, experts, getK(), getNGroup(), getTopkGroup(),
                           getGroupScore(),
                           getRoutedScalingFactor().convertToDouble())))
    return failure();
  int64_t k = getK();

  if (Value bias = getBias()) {
    auto biasType = cast<RankedTensorType>(bias.getType());
    if (biasType.getRank() != 1 || biasType.getDimSize(0) != experts)
      return emitOpError("bias must be [E] = [")
             << experts << "], got " << biasType;
  }

  for (auto [name, type] : {std::pair<StringRef, RankedTensorType>{
                                "weights", getWeights().getType()},
                            {"experts", getExperts().getType()}}) {
    if (type.getRank() != 2 || type.getDimSize(1) != k ||
        (!ShapedType::isDynamic(tokens) &&
         !ShapedType::isDynamic(type.getDimSize(0)) &&
         type.getDimSize(0) != tokens))
      return emitOpError() << name << " must be [T, k] = ["
                           << (ShapedType::isDynamic(tokens)
                                   ? std::string("?")
                                   : std::to_string(tokens))
                           << ", " << k << "], got " << type;
  }
  return success();
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

LogicalResult DispatchOp::verify() {
  RankedTensorType experts = getExperts().getType();
  if (experts.getRank() != 2)
    return emitOpError("experts must be [T, k], got ") << experts;
  int64_t tokens = experts.getDimSize(0), k = experts.getDimSize(1);
  int64_t e = getNumExperts();
  if (e < 1)
    return emitOpError("num_experts must be >= 1, got ") << e;
  // Expert indices and the E + 1 offsets are i32.
  if (e >= std::numeric_limits<int32_t>::max())
    return emitOpError("num_experts must be < 2^31 - 1 (expert indices and "
                       "offsets are i32), got ")
           << e;
  if (failed(verifyCapacity(*this, getCapacityFactor())))
    return failure();
  RankedTensorType rows = getRows().getType();
  int64_t assignments =
      ShapedType::isDynamic(tokens) || ShapedType::isDynamic(k)
          ? ShapedType::kDynamic
          : tokens * k;
  if (rows.getRank() != 1 || differ(rows.getDimSize(0), assignments))
    return emitOpError("rows must be [T * k] = [")
           << dimString(assignments) << "], got " << rows;
  RankedTensorType offsets = getOffsets().getType();
  if (offsets.getRank() != 1 || offsets.getDimSize(0) != e + 1)
    return emitOpError("offsets must be [E + 1] = [")
           << e + 1 << "], got " << offsets;
  RankedTensorType slots = getSlots().getType();
  if (slots.getRank() != 2 || differ(slots.getDimSize(0), tokens) ||
      differ(slots.getDimSize(1), k))
    return emitOpError("slots must have the shape of experts ")
           << experts << ", got " << slots;
  return success();
}

//===----------------------------------------------------------------------===//
// ExpertsOp
//===----------------------------------------------------------------------===//

LogicalResult ExpertsOp::verify() {
  RankedTensorType x = getInput().getType();
  if (x.getRank() != 2)
    return emitOpError("input must be [T, d], got ") << x;
  int64_t d = x.getDimSize(1);
  Type elt = x.getElementType();
  if (failed(verifyExpertStacks(*this, getKind(), d, elt, getW1(), getW2(),
                                getW3())))
    return failure();
  int64_t e = getW1().getType().getDimSize(0);
  bool kan = getKind() == ExpertKind::kan;
  Value coeffs[] = {getA1(), getB1(), getA2(), getB2()};
  bool any = llvm::any_of(coeffs, [](Value v) { return bool(v); });
  if (kan && !any)
    return emitOpError("kan experts need rationals(a1, b1, a2, b2)");
  if (!kan && any)
    return emitOpError("only kan experts take rationals");
  if (kan) {
    int64_t f = getW1().getType().getDimSize(1);
    for (auto [idx, pair] :
         llvm::enumerate(std::array<std::pair<Value, Value>, 2>{
             {{getA1(), getB1()}, {getA2(), getB2()}}})) {
      auto a = cast<RankedTensorType>(pair.first.getType());
      auto bt = cast<RankedTensorType>(pair.second.getType());
      int64_t channels = idx == 0 ? d : f;
      StringRef which = idx == 0 ? "first" : "second";
      if (a.getRank() != 3 || bt.getRank() != 3 || !a.hasStaticShape() ||
          !bt.hasStaticShape())
        return emitOpError("the ")
               << which << " rational's coefficients must be static stacks "
               << "[E, G, .], got " << a << " and " << bt;
      if (a.getDimSize(0) != e || bt.getDimSize(0) != e)
        return emitOpError("the ")
               << which << " rational's coefficients must stack E = " << e
               << " experts, got " << a << " and " << bt;
      int64_t groups = bt.getDimSize(1);
      if (groups < 1 || (a.getDimSize(1) != 1 && a.getDimSize(1) != groups))
        return emitOpError("the ")
               << which << " rational's numerator must have 1 or G = " << groups
               << " rows per expert, got " << a;
      if (a.getDimSize(2) < 1 || a.getDimSize(2) > 17 || bt.getDimSize(2) > 16)
        return emitOpError("the ")
               << which << " rational's degrees must be in [0, 16], got " << a
               << " and " << bt;
      if (!ShapedType::isDynamic(channels) && channels % groups != 0)
        return emitOpError("the ")
               << which << " rational's " << groups
               << " groups do not divide its " << channels << " channels";
      Type ce = a.getElementType();
      if (ce != bt.getElementType() || (!ce.isF32() && ce != elt))
        return emitOpError("rational coefficients must be f32 or the "
                           "input's element type, the same for a and b");
    }
  }
  RankedTensorType rows = getRows().getType();
  if (rows.getRank() != 1)
    return emitOpError("rows must be [N], got ") << rows;
  RankedTensorType offsets = getOffsets().getType();
  if (offsets.getRank() != 1 || offsets.getDimSize(0) != e + 1)
    return emitOpError("offsets must be [E + 1] = [")
           << e + 1 << "], got " << offsets;
  RankedTensorType result = getResult().getType();
  if (result.getRank() != 2 ||
      differ(result.getDimSize(0), rows.getDimSize(0)) ||
      differ(result.getDimSize(1), d))
    return emitOpError("result must be [N, d] = [")
           << dimString(rows.getDimSize(0)) << ", " << dimString(d) << "], got "
           << result;
  return success();
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

LogicalResult CombineOp::verify() {
  RankedTensorType y = getExpertOutputs().getType();
  RankedTensorType slots = getSlots().getType();
  RankedTensorType weights = getWeights().getType();
  if (y.getRank() != 2)
    return emitOpError("expert_outputs must be [N, d], got ") << y;
  if (slots.getRank() != 2)
    return emitOpError("slots must be [T, k], got ") << slots;
  if (weights.getRank() != 2 ||
      differ(weights.getDimSize(0), slots.getDimSize(0)) ||
      differ(weights.getDimSize(1), slots.getDimSize(1)))
    return emitOpError("weights must have the shape of slots ")
           << slots << ", got " << weights;
  int64_t tokens = slots.getDimSize(0), d = y.getDimSize(1);
  RankedTensorType result = getResult().getType();
  if (result.getRank() != 2 || differ(result.getDimSize(0), tokens) ||
      differ(result.getDimSize(1), d))
    return emitOpError("result must be [T, d] = [")
           << dimString(tokens) << ", " << dimString(d) << "], got " << result;
  if (Value shared = getShared())
    if (cast<RankedTensorType>(shared.getType()).getRank() != 2 ||
        differ(cast<RankedTensorType>(shared.getType()).getDimSize(0),
               tokens) ||
        differ(cast<RankedTensorType>(shared.getType()).getDimSize(1), d))
      return emitOpError("shared must be [T, d] = [")
             << dimString(tokens) << ", " << dimString(d) << "], got "
             << shared.getType();
  return success();
}

//===----------------------------------------------------------------------===//
// SharedExpertsOp
//===----------------------------------------------------------------------===//

LogicalResult SharedExpertsOp::verify() {
  if (getKind() == ExpertKind::kan)
    return emitOpError("shared experts are swiglu or gelu");
  RankedTensorType x = getInput().getType();
  if (x.getRank() != 2)
    return emitOpError("input must be [T, d], got ") << x;
  int64_t tokens = x.getDimSize(0), d = x.getDimSize(1);
  Type elt = x.getElementType();
  if (failed(verifySharedWeights(*this, getKind(), d, elt, getW1(), getW2(),
                                 getW3(), getGate())))
    return failure();
  RankedTensorType result = getResult().getType();
  if (result.getRank() != 2 || differ(result.getDimSize(0), tokens) ||
      differ(result.getDimSize(1), d))
    return emitOpError("result must be [T, d] = [")
           << dimString(tokens) << ", " << dimString(d) << "], got " << result;
  return success();
}

//===----------------------------------------------------------------------===//
// LayerOp
//===----------------------------------------------------------------------===//

LogicalResult LayerOp::verify() {
  if (getKind() == ExpertKind::kan)
    return emitOpError("kan experts are written with moe.experts; moe.layer "
                       "takes swiglu or gelu experts");
  RankedTensorType x = getInput().getType();
  if (x.getRank() != 2)
    return emitOpError("input must be [T, d], got ") << x;
  int64_t tokens = x.getDimSize(0), d = x.getDimSize(1);
  Type elt = x.getElementType();
  RankedTensorType gate = getGate().getType();
  if (gate.getRank() != 2 || ShapedType::isDynamic(gate.getDimSize(0)) ||
      differ(gate.getDimSize(1), d))
    return emitOpError("gate must be [E, d] with a static E and d = ")
           << dimString(d) << ", got " << gate;
  int64_t experts = gate.getDimSize(0);
  if (experts < 1)
    return emitOpError("needs at least one expert, got E = 0");
  if (gate.getElementType() != elt)
    return emitOpError("gate must have the input's element type ")
           << elt << ", got " << gate;
  if (failed(verifyRouting(*this, experts, getK(), getNGroup(), getTopkGroup(),
                           getGroupScore(),
                           getRoutedScalingFactor().convertToDouble())) ||
      failed(verifyCapacity(*this, getCapacityFactor())) ||
      failed(verifyExpertStacks(*this, getKind(), d, elt, getW1(), getW2(),
                                getW3())))
    return failure();
  if (getW1().getType().getDimSize(0) != experts)
    return emitOpError("the gate has E = ")
           << experts << " experts, the expert weights "
           << getW1().getType().getDimSize(0);
  if (Value bias = getBias()) {
    auto b = cast<RankedTensorType>(bias.getType());
    if (b.getRank() != 1 || b.getDimSize(0) != experts)
      return emitOpError("bias must be [E] = [") << experts << "], got " << b;
  }
  if (!getSharedW1() && (getSharedW3() || getSharedGate()))
    return emitOpError("shared_up and shared_gate need shared(w1, w2)");
  if (getSharedW1() && failed(verifySharedWeights(
                           *this, getKind(), d, elt, getSharedW1(),
                           getSharedW2(), getSharedW3(), getSharedGate())))
    return failure();
  RankedTensorType result = getResult().getType();
  if (result.getRank() != 2 || differ(result.getDimSize(0), tokens) ||
      differ(result.getDimSize(1), d))
    return emitOpError("result must be [T, d] = [")
           << dimString(tokens) << ", " << dimString(d) << "], got " << result;
  return success();
}

#include "moka/Dialect/MoE/IR/MoEEnums.cpp.inc"

#define GET_OP_CLASSES
#include "moka/Dialect/MoE/IR/MoEOps.cpp.inc"
