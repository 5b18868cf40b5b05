//===- MoEOps.cpp - Operations of the `moe` dialect -----------------------===//
//
// Verifiers of the `moe` operations.
//
//===----------------------------------------------------------------------===//

#include "moka/Dialect/MoE/IR/MoEOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

#include <cmath>

using namespace mlir;
using namespace moka::moe;

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

  int64_t k = getK();
  if (k < 1)
    return emitOpError("k must be >= 1, got ") << k;
  if (k > experts)
    return emitOpError("k = ")
           << k << " exceeds the number of experts E = " << experts;

  int64_t groups = getNGroup(), keep = getTopkGroup();
  if (groups < 1)
    return emitOpError("n_group must be >= 1, got ") << groups;
  if (experts % groups != 0)
    return emitOpError("n_group = ")
           << groups
           << " does not divide the number of experts E = " << experts;
  if (keep < 1 || keep > groups)
    return emitOpError("topk_group must be in [1, n_group = ")
           << groups << "], got " << keep;
  int64_t perGroup = experts / groups;
  if (k > keep * perGroup)
    return emitOpError("k = ") << k << " exceeds the " << keep * perGroup
                               << " experts left by topk_group = " << keep
                               << " groups of " << perGroup;
  if (groups > 1 && getGroupScore() == GroupScore::top2_sum && perGroup < 2)
    return emitOpError("group_score top2_sum needs at least 2 experts per "
                       "group, got ")
           << perGroup;

  double scale = getRoutedScalingFactor().convertToDouble();
  if (!std::isfinite(scale) || scale <= 0)
    return emitOpError("routed_scaling_factor must be finite and > 0, got ")
           << scale;

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

#include "moka/Dialect/MoE/IR/MoEEnums.cpp.inc"

#define GET_OP_CLASSES
#include "moka/Dialect/MoE/IR/MoEOps.cpp.inc"
