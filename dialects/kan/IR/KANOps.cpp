//===- KANOps.cpp - Operations of the `kan` dialect -----------------------===//
//
// Verifiers of the `kan` operations.
//
//===----------------------------------------------------------------------===//

#include "moka/Dialect/KAN/IR/KANOps.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

#include <cmath>

using namespace mlir;
using namespace moka::kan;

/// Checks the coefficient tensors of a group-rational function against the
/// degrees `m`, `n` and the channel count of `inputType`.
static LogicalResult verifyRational(Operation *op, RankedTensorType inputType,
                                    RankedTensorType numType,
                                    RankedTensorType denType, int64_t m,
                                    int64_t n) {
  if (inputType.getRank() < 1)
    return op->emitOpError(
        "input must have rank >= 1 (channels last), got rank 0");

  if (!numType.hasStaticShape() || !denType.hasStaticShape())
    return op->emitOpError("coefficient shapes must be static, got ")
           << numType << " and " << denType;

  if (numType.getElementType() != denType.getElementType())
    return op->emitOpError("numerator and denominator element types differ: ")
           << numType.getElementType() << " vs " << denType.getElementType();

  Type coeffElt = numType.getElementType();
  if (coeffElt != inputType.getElementType() && !coeffElt.isF32())
    return op->emitOpError("coefficient element type must be f32 or the input "
                           "element type ")
           << inputType.getElementType() << ", got " << coeffElt;

  if (numType.getDimSize(1) != m + 1)
    return op->emitOpError("numerator has ")
           << numType.getDimSize(1)
           << " coefficients per group, expected m + 1 = " << m + 1;
  if (denType.getDimSize(1) != n)
    return op->emitOpError("denominator has ")
           << denType.getDimSize(1)
           << " coefficients per group, expected n = " << n;

  int64_t groups = denType.getDimSize(0);
  if (groups < 1)
    return op->emitOpError(
        "denominator must have one row per group, got 0 rows");
  int64_t numRows = numType.getDimSize(0);
  if (numRows != 1 && numRows != groups)
    return op->emitOpError("numerator has ")
           << numRows << " rows, expected 1 (shared) or G = " << groups;

  int64_t channels = inputType.getDimSize(inputType.getRank() - 1);
  if (!ShapedType::isDynamic(channels) && channels % groups != 0)
    return op->emitOpError("channel count C = ")
           << channels
           << " is not divisible by the number of groups G = " << groups;
  return success();
}

//===----------------------------------------------------------------------===//
// RationalOp
//===----------------------------------------------------------------------===//

LogicalResult RationalOp::reifyResultShapes(
    OpBuilder &b, ReifiedRankedShapedTypeDims &reifiedReturnShapes) {
  reifiedReturnShapes.push_back(tensor::getMixedSizes(b, getLoc(), getInput()));
  return success();
}

LogicalResult RationalOp::verify() {
  return verifyRational(*this, getInput().getType(), getNumerator().getType(),
                        getDenominator().getType(), getM(), getN());
}

//===----------------------------------------------------------------------===//
// RationalGradOp
//===----------------------------------------------------------------------===//

LogicalResult RationalGradOp::verify() {
  return verifyRational(*this, getInput().getType(), getNumerator().getType(),
                        getDenominator().getType(), getM(), getN());
}

//===----------------------------------------------------------------------===//
// LayerOp
//===----------------------------------------------------------------------===//

namespace {
/// Largest accepted basis parameters: beyond these a KAN layer is no longer a
/// sensible model and the basis expansion would dominate everything else.
constexpr int64_t kMaxGridSize = 1024;
constexpr int64_t kMaxOrder = 8;
constexpr int64_t kMaxDegree = 64;
} // namespace

LogicalResult
LayerOp::reifyResultShapes(OpBuilder &b,
                           ReifiedRankedShapedTypeDims &reifiedReturnShapes) {
  SmallVector<OpFoldResult> sizes =
      tensor::getMixedSizes(b, getLoc(), getInput());
  sizes.back() = tensor::getMixedSize(b, getLoc(), getWeight(), 0);
  reifiedReturnShapes.push_back(sizes);
  return success();
}

int64_t LayerOp::getEffectiveGridSize() {
  if (std::optional<int64_t> g = getGridSize())
    return *g;
  return getBasis() == Basis::rbf ? 8 : 5;
}

int64_t LayerOp::getEffectiveOrder() { return getOrder().value_or(3); }

int64_t LayerOp::getEffectiveDegree() { return getDegree().value_or(3); }

double LayerOp::getEffectiveGridMin() {
  if (FloatAttr attr = getGridMinAttr())
    return attr.getValueAsDouble();
  return getBasis() == Basis::rbf ? -2.0 : -1.0;
}

double LayerOp::getEffectiveGridMax() {
  if (FloatAttr attr = getGridMaxAttr())
    return attr.getValueAsDouble();
  return getBasis() == Basis::rbf ? 2.0 : 1.0;
}

int64_t LayerOp::getNumBasisFunctions() {
  switch (getBasis()) {
  case Basis::rational:
    return 1;
  case Basis::bspline:
    return getEffectiveGridSize() + getEffectiveOrder();
  case Basis::rbf:
    return getEffectiveGridSize();
  case Basis::chebyshev:
    return getEffectiveDegree() + 1;
  case Basis::fourier:
    return 2 * getEffectiveGridSize();
  }
  llvm_unreachable("unknown basis");
}

/// True when the static sizes `a` and `b` disagree (a dynamic size agrees with
/// anything; those are checked at run time by the lowering).
static bool mismatch(int64_t a, int64_t b) {
  return !ShapedType::isDynamic(a) && !ShapedType::isDynamic(b) && a != b;
}

LogicalResult LayerOp::verify() {
  Basis basis = getBasis();
  StringRef basisName = stringifyBasis(basis);
  RankedTensorType inType = getInput().getType();
  RankedTensorType wType = getWeight().getType();
  RankedTensorType outType = getResult().getType();
  int64_t rank = inType.getRank();
  if (rank < 1)
    return emitOpError("input must have rank >= 1 (channels last), got rank 0");

  Type elt = inType.getElementType();
  auto checkElt = [&](Value v, StringRef name) -> LogicalResult {
    if (!v)
      return success();
    Type t = cast<RankedTensorType>(v.getType()).getElementType();
    if (t != elt)
      return emitOpError() << name << " element type " << t
                           << " differs from the input element type " << elt;
    return success();
  };
  if (failed(checkElt(getWeight(), "weight")) ||
      failed(checkElt(getBias(), "bias")) ||
      failed(checkElt(getBaseWeight(), "base_weight")) ||
      failed(checkElt(getResult(), "result")))
    return failure();

  // Parameters that only some bases take.
  bool takesGrid = basis == Basis::bspline || basis == Basis::rbf;
  bool takesGridSize = takesGrid || basis == Basis::fourier;
  if (getGridSizeAttr() && !takesGridSize)
    return emitOpError("'grid_size' does not apply to the ")
           << basisName << " basis";
  if (getOrderAttr() && basis != Basis::bspline)
    return emitOpError("'order' does not apply to the ")
           << basisName << " basis";
  if (getDegreeAttr() && basis != Basis::chebyshev)
    return emitOpError("'degree' does not apply to the ")
           << basisName << " basis";
  if ((getGridMinAttr() || getGridMaxAttr()) && !takesGrid)
    return emitOpError("'grid_min' and 'grid_max' do not apply to the ")
           << basisName << " basis";

  if (takesGridSize) {
    int64_t minGrid = basis == Basis::rbf ? 2 : 1;
    int64_t g = getEffectiveGridSize();
    if (g < minGrid || g > kMaxGridSize)
      return emitOpError("grid_size must be in [")
             << minGrid << ", " << kMaxGridSize << "] for the " << basisName
             << " basis, got " << g;
  }
  if (basis == Basis::bspline) {
    int64_t k = getEffectiveOrder();
    if (k < 0 || k > kMaxOrder)
      return emitOpError("order must be in [0, ")
             << kMaxOrder << "], got " << k;
  }
  if (basis == Basis::chebyshev) {
    int64_t d = getEffectiveDegree();
    if (d < 0 || d > kMaxDegree)
      return emitOpError("degree must be in [0, ")
             << kMaxDegree << "], got " << d;
  }
  if (takesGrid) {
    double lo = getEffectiveGridMin(), hi = getEffectiveGridMax();
    if (!std::isfinite(lo) || !std::isfinite(hi) || !(lo < hi))
      return emitOpError("grid range must be finite with grid_min < "
                         "grid_max, got [")
             << lo << ", " << hi << "]";
  }

  // Operands that only some bases take.
  bool isRational = basis == Basis::rational;
  if (static_cast<bool>(getNumerator()) != static_cast<bool>(getDenominator()))
    return emitOpError("numerator and denominator come together: got only "
                       "the ")
           << (getNumerator() ? "numerator" : "denominator");
  if (isRational && !getNumerator())
    return emitOpError("the rational basis needs coefficients(numerator, "
                       "denominator)");
  if (!isRational && getNumerator())
    return emitOpError("coefficients apply only to the rational basis, not to ")
           << basisName;
  if (isRational && getBaseWeight())
    return emitOpError("the rational basis has no base branch");

  // Shapes.
  int64_t cin = inType.getDimSize(rank - 1);
  int64_t wantWeightRank = isRational ? 2 : 3;
  if (wType.getRank() != wantWeightRank)
    return emitOpError("weight of the ")
           << basisName << " basis must have rank " << wantWeightRank
           << (isRational ? " [Cout, Cin]" : " [Cout, Cin, K]") << ", got "
           << wType;
  int64_t cout = wType.getDimSize(0);
  if (mismatch(wType.getDimSize(1), cin))
    return emitOpError("weight has ")
           << wType.getDimSize(1) << " input channels, the input has " << cin;
  if (!isRational) {
    int64_t k = getNumBasisFunctions();
    if (mismatch(wType.getDimSize(2), k))
      return emitOpError("weight has ")
             << wType.getDimSize(2) << " basis functions per input, the "
             << basisName << " basis has K = " << k;
  }
  if (Value b = getBias()) {
    auto bType = cast<RankedTensorType>(b.getType());
    if (bType.getRank() != 1 || mismatch(bType.getDimSize(0), cout))
      return emitOpError("bias must be [Cout] = [")
             << (ShapedType::isDynamic(cout) ? std::string("?")
                                             : std::to_string(cout))
             << "], got " << bType;
  }
  if (Value bw = getBaseWeight()) {
    auto bwType = cast<RankedTensorType>(bw.getType());
    if (bwType.getRank() != 2 || mismatch(bwType.getDimSize(0), cout) ||
        mismatch(bwType.getDimSize(1), cin))
      return emitOpError("base_weight must be [Cout, Cin] like the first two "
                         "dimensions of weight, got ")
             << bwType;
  }
  if (outType.getRank() != rank)
    return emitOpError("result must have the rank of the input (")
           << rank << "), got " << outType;
  for (int64_t i = 0; i + 1 < rank; ++i)
    if (mismatch(outType.getDimSize(i), inType.getDimSize(i)))
      return emitOpError("result dimension ")
             << i << " is " << outType.getDimSize(i) << ", the input's is "
             << inType.getDimSize(i);
  if (mismatch(outType.getDimSize(rank - 1), cout))
    return emitOpError("result has ")
           << outType.getDimSize(rank - 1)
           << " channels, the weight has Cout = " << cout;

  if (isRational) {
    auto numType = cast<RankedTensorType>(getNumerator().getType());
    auto denType = cast<RankedTensorType>(getDenominator().getType());
    if (numType.getDimSize(1) < 1 || numType.getDimSize(1) > 17 ||
        denType.getDimSize(1) > 16)
      return emitOpError("rational degrees must be in [0, 16]: numerator ")
             << numType << ", denominator " << denType;
    return verifyRational(*this, inType, numType, denType,
                          numType.getDimSize(1) - 1, denType.getDimSize(1));
  }
  return success();
}

#include "moka/Dialect/KAN/IR/KANEnums.cpp.inc"

#define GET_OP_CLASSES
#include "moka/Dialect/KAN/IR/KANOps.cpp.inc"
