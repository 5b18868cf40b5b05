//===- KANOps.cpp - Operations of the `kan` dialect -----------------------===//
//
// Verifiers of the `kan` operations.
//
//===----------------------------------------------------------------------===//

#include "moka/Dialect/KAN/IR/KANOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace moka::kan;

//===----------------------------------------------------------------------===//
// RationalOp
//===----------------------------------------------------------------------===//

LogicalResult RationalOp::verify() {
  RankedTensorType inputType = getInput().getType();
  RankedTensorType numType = getNumerator().getType();
  RankedTensorType denType = getDenominator().getType();

  if (inputType.getRank() < 1)
    return emitOpError("input must have rank >= 1 (channels last), got rank 0");

  if (!numType.hasStaticShape() || !denType.hasStaticShape())
    return emitOpError("coefficient shapes must be static, got ")
           << numType << " and " << denType;

  if (numType.getElementType() != denType.getElementType())
    return emitOpError("numerator and denominator element types differ: ")
           << numType.getElementType() << " vs " << denType.getElementType();

  Type coeffElt = numType.getElementType();
  if (coeffElt != inputType.getElementType() && !coeffElt.isF32())
    return emitOpError("coefficient element type must be f32 or the input "
                       "element type ")
           << inputType.getElementType() << ", got " << coeffElt;

  int64_t m = getM(), n = getN();
  if (numType.getDimSize(1) != m + 1)
    return emitOpError("numerator has ")
           << numType.getDimSize(1)
           << " coefficients per group, expected m + 1 = " << m + 1;
  if (denType.getDimSize(1) != n)
    return emitOpError("denominator has ")
           << denType.getDimSize(1)
           << " coefficients per group, expected n = " << n;

  int64_t groups = denType.getDimSize(0);
  if (groups < 1)
    return emitOpError("denominator must have one row per group, got 0 rows");
  int64_t numRows = numType.getDimSize(0);
  if (numRows != 1 && numRows != groups)
    return emitOpError("numerator has ")
           << numRows << " rows, expected 1 (shared) or G = " << groups;

  int64_t channels = inputType.getDimSize(inputType.getRank() - 1);
  if (!ShapedType::isDynamic(channels) && channels % groups != 0)
    return emitOpError("channel count C = ")
           << channels
           << " is not divisible by the number of groups G = " << groups;
  return success();
}

#define GET_OP_CLASSES
#include "moka/Dialect/KAN/IR/KANOps.cpp.inc"
