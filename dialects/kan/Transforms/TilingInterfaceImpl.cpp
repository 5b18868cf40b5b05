//===- TilingInterfaceImpl.cpp - TilingInterface for the kan ops ----------===//
//
// External models of TilingInterface for `kan.rational` and `kan.layer`, so
// that upstream tiling, tile-and-fuse and transform-dialect schedules apply to
// them.
//
//===----------------------------------------------------------------------===//

#include "moka/Dialect/KAN/IR/KANDialect.h"
#include "moka/Dialect/KAN/Transforms/Transforms.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Interfaces/TilingInterface.h"

using namespace mlir;
using namespace moka::kan;

namespace {

SmallVector<Range> domainOf(OpBuilder &b, Location loc,
                            ArrayRef<OpFoldResult> sizes) {
  SmallVector<Range> ranges;
  for (OpFoldResult s : sizes)
    ranges.push_back(Range{b.getIndexAttr(0), s, b.getIndexAttr(1)});
  return ranges;
}

/// A slice of `src` with unit strides, recorded in `slices`.
Value slice(OpBuilder &b, Location loc, Value src,
            ArrayRef<OpFoldResult> offsets, ArrayRef<OpFoldResult> sizes,
            SmallVectorImpl<Operation *> &slices) {
  SmallVector<OpFoldResult> strides(offsets.size(), b.getIndexAttr(1));
  auto op =
      tensor::ExtractSliceOp::create(b, loc, src, offsets, sizes, strides);
  slices.push_back(op);
  return op.getResult();
}

/// True when the tile `[offset, offset + size)` of the last dimension of `v`
/// (the input of `op`, whose result has the same shape) is the whole
/// dimension.
bool coversLastDim(Operation *op, Value v, OpFoldResult offset,
                   OpFoldResult size) {
  if (!isConstantIntValue(offset, 0))
    return false;
  auto type = cast<RankedTensorType>(v.getType());
  int64_t last = type.getRank() - 1;
  int64_t extent = type.getDimSize(last);
  if (std::optional<int64_t> s = getConstantIntValue(size))
    return !ShapedType::isDynamic(extent) && *s == extent;
  auto dim =
      dyn_cast_if_present<Value>(size)
          ? dyn_cast_or_null<tensor::DimOp>(cast<Value>(size).getDefiningOp())
          : nullptr;
  if (!dim || (dim.getSource() != v && dim.getSource() != op->getResult(0)))
    return false;
  std::optional<int64_t> idx = dim.getConstantIndex();
  return idx && *idx == last;
}

/// The part shared by the kan ops' models: one result whose tile is the
/// iteration-space tile itself.
template <typename Model, typename OpTy>
struct ResultIsDomainModel : TilingInterface::ExternalModel<Model, OpTy> {
  LogicalResult
  getResultTilePosition(Operation *op, OpBuilder &b, unsigned resultNumber,
                        ArrayRef<OpFoldResult> offsets,
                        ArrayRef<OpFoldResult> sizes,
                        SmallVector<OpFoldResult> &resultOffsets,
                        SmallVector<OpFoldResult> &resultSizes) const {
    resultOffsets.assign(offsets.begin(), offsets.end());
    resultSizes.assign(sizes.begin(), sizes.end());
    return success();
  }

  FailureOr<TilingResult>
  generateResultTileValue(Operation *op, OpBuilder &b, unsigned resultNumber,
                          ArrayRef<OpFoldResult> offsets,
                          ArrayRef<OpFoldResult> sizes) const {
    return static_cast<const Model *>(this)->getTiledImplementation(
        op, b, offsets, sizes);
  }
};

//===----------------------------------------------------------------------===//
// kan.rational
//===----------------------------------------------------------------------===//

struct RationalTilingModel
    : ResultIsDomainModel<RationalTilingModel, RationalOp> {
  SmallVector<utils::IteratorType> getLoopIteratorTypes(Operation *op) const {
    auto rational = cast<RationalOp>(op);
    return SmallVector<utils::IteratorType>(
        rational.getInput().getType().getRank(), utils::IteratorType::parallel);
  }

  SmallVector<Range> getIterationDomain(Operation *op, OpBuilder &b) const {
    auto rational = cast<RationalOp>(op);
    Location loc = op->getLoc();
    return domainOf(b, loc, tensor::getMixedSizes(b, loc, rational.getInput()));
  }

  FailureOr<TilingResult>
  getTiledImplementation(Operation *op, OpBuilder &b,
                         ArrayRef<OpFoldResult> offsets,
                         ArrayRef<OpFoldResult> sizes) const {
    auto rational = cast<RationalOp>(op);
    Location loc = op->getLoc();
    Value x = rational.getInput();
    TilingResult result;
    Value xTile = slice(b, loc, x, offsets, sizes, result.generatedSlices);
    auto tileType = cast<RankedTensorType>(xTile.getType());

    if (coversLastDim(op, x, offsets.back(), sizes.back())) {
      // Whole channel rows: the tile is the same op on fewer rows.
      auto tiled = RationalOp::create(
          b, loc, tileType, xTile, rational.getNumerator(),
          rational.getDenominator(), rational.getMAttr(), rational.getNAttr());
      result.tiledOps.push_back(tiled);
      result.tiledValues.push_back(tiled.getResult());
      return result;
    }

    // A part of the channels: the group of each element depends on the
    // channel offset of the tile, so the tile is computed by a generic that
    // looks its coefficients up per element.
    int64_t rank = tileType.getRank();
    Type elt = tileType.getElementType();
    Type f32 = b.getF32Type();
    Value channels = tensor::DimOp::create(b, loc, x, rank - 1);
    Value groups =
        arith::ConstantIndexOp::create(b, loc, rational.getNumGroups());
    if (cast<RankedTensorType>(x.getType()).isDynamicDim(rank - 1)) {
      // The untiled lowering's check, which this tile replaces: without it a
      // channel count that is no multiple of G would index coefficients out
      // of bounds.
      Value rem = arith::RemUIOp::create(b, loc, channels, groups);
      Value zero = arith::ConstantIndexOp::create(b, loc, 0);
      Value divisible =
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, rem, zero);
      cf::AssertOp::create(b, loc, divisible,
                           "kan.rational: channel count is not divisible by "
                           "the number of groups");
    }
    Value perGroup = arith::DivUIOp::create(b, loc, channels, groups);
    Value offset = getValueOrCreateConstantIndexOp(b, loc, offsets.back());
    bool shared = rational.hasSharedNumerator();
    int64_t m = rational.getM(), n = rational.getN();
    Value num = rational.getNumerator(), den = rational.getDenominator();

    Value init = tensor::EmptyOp::create(b, loc, sizes, elt);
    AffineMap id = b.getMultiDimIdentityMap(rank);
    SmallVector<utils::IteratorType> iterators(rank,
                                               utils::IteratorType::parallel);
    auto generic = linalg::GenericOp::create(
        b, loc, TypeRange{tileType}, ValueRange{xTile}, ValueRange{init},
        ArrayRef<AffineMap>{id, id}, iterators,
        [&](OpBuilder &nb, Location nl, ValueRange args) {
          Value c = arith::AddIOp::create(
              nb, nl, linalg::IndexOp::create(nb, nl, rank - 1), offset);
          Value g = arith::DivUIOp::create(nb, nl, c, perGroup);
          Value zero = arith::ConstantIndexOp::create(nb, nl, 0);
          Value numRow = shared ? zero : g;
          auto coeff = [&](Value t, Value row, int64_t col, bool abs) {
            Value colIdx = arith::ConstantIndexOp::create(nb, nl, col);
            Value v =
                tensor::ExtractOp::create(nb, nl, t, ValueRange{row, colIdx});
            if (!v.getType().isF32())
              v = arith::ExtFOp::create(nb, nl, f32, v);
            return abs ? math::AbsFOp::create(nb, nl, v).getResult() : v;
          };
          SmallVector<Value> a, bAbs;
          for (int64_t i = 0; i <= m; ++i)
            a.push_back(coeff(num, numRow, i, false));
          for (int64_t j = 0; j < n; ++j)
            bAbs.push_back(coeff(den, g, j, true));
          Value v = args[0];
          if (elt != f32)
            v = arith::ExtFOp::create(nb, nl, f32, v);
          Value y = buildRational(nb, nl, v, a, bAbs);
          if (elt != f32)
            y = arith::TruncFOp::create(nb, nl, elt, y);
          linalg::YieldOp::create(nb, nl, y);
        });
    result.tiledOps.push_back(generic);
    result.tiledValues.push_back(generic.getResult(0));
    return result;
  }

  LogicalResult getIterationDomainTileFromOperandTiles(
      Operation *op, OpBuilder &b, ArrayRef<unsigned> operandNumbers,
      ArrayRef<SmallVector<OpFoldResult>> allOffsets,
      ArrayRef<SmallVector<OpFoldResult>> allSizes,
      SmallVectorImpl<OpFoldResult> &iterDomainOffsets,
      SmallVectorImpl<OpFoldResult> &iterDomainSizes) const {
    // Only a tile of the input maps onto the iteration space; the
    // coefficients are read whole by every tile.
    if (operandNumbers.size() != 1 || operandNumbers[0] != 0)
      return failure();
    iterDomainOffsets.assign(allOffsets[0].begin(), allOffsets[0].end());
    iterDomainSizes.assign(allSizes[0].begin(), allSizes[0].end());
    return success();
  }

  FailureOr<TilingResult> getTiledImplementationFromOperandTiles(
      Operation *op, OpBuilder &b, ArrayRef<unsigned> operandNumbers,
      ArrayRef<SmallVector<OpFoldResult>> allOffsets,
      ArrayRef<SmallVector<OpFoldResult>> allSizes) const {
    SmallVector<OpFoldResult> offsets, sizes;
    if (failed(getIterationDomainTileFromOperandTiles(
            op, b, operandNumbers, allOffsets, allSizes, offsets, sizes)))
      return failure();
    return getTiledImplementation(op, b, offsets, sizes);
  }
};

//===----------------------------------------------------------------------===//
// kan.layer
//===----------------------------------------------------------------------===//

/// The iteration space of `kan.layer` is its result: the leading dimensions
/// of the input and the output channels, all parallel. The reduction over
/// input channels and basis functions stays inside each tile.
struct LayerTilingModel : ResultIsDomainModel<LayerTilingModel, LayerOp> {
  SmallVector<utils::IteratorType> getLoopIteratorTypes(Operation *op) const {
    auto layer = cast<LayerOp>(op);
    return SmallVector<utils::IteratorType>(layer.getType().getRank(),
                                            utils::IteratorType::parallel);
  }

  SmallVector<Range> getIterationDomain(Operation *op, OpBuilder &b) const {
    auto layer = cast<LayerOp>(op);
    Location loc = op->getLoc();
    SmallVector<OpFoldResult> sizes =
        tensor::getMixedSizes(b, loc, layer.getInput());
    sizes.back() = tensor::getMixedSize(b, loc, layer.getWeight(), 0);
    return domainOf(b, loc, sizes);
  }

  FailureOr<TilingResult>
  getTiledImplementation(Operation *op, OpBuilder &b,
                         ArrayRef<OpFoldResult> offsets,
                         ArrayRef<OpFoldResult> sizes) const {
    auto layer = cast<LayerOp>(op);
    Location loc = op->getLoc();
    TilingResult result;
    OpFoldResult zero = b.getIndexAttr(0);
    OpFoldResult oOffset = offsets.back(), oSize = sizes.back();

    // Rows of the input, all input channels.
    Value x = layer.getInput();
    SmallVector<OpFoldResult> xOffsets(offsets), xSizes(sizes);
    xOffsets.back() = zero;
    xSizes.back() = tensor::getMixedSize(b, loc, x, xSizes.size() - 1);
    SmallVector<Value> operands = {
        slice(b, loc, x, xOffsets, xSizes, result.generatedSlices)};

    // Output channels of the weights and bias. Their row counts must agree
    // before they are sliced, or the tile would check only its own slice.
    OpFoldResult cout = tensor::getMixedSize(b, loc, layer.getWeight(), 0);
    if (Value bias = layer.getBias())
      assertSameSize(b, loc, tensor::getMixedSize(b, loc, bias, 0), cout,
                     "kan.layer: bias size differs from the output channels");
    if (Value base = layer.getBaseWeight())
      assertSameSize(b, loc, tensor::getMixedSize(b, loc, base, 0), cout,
                     "kan.layer: base_weight rows differ from the output "
                     "channels");
    auto rowsOf = [&](Value w) {
      auto type = cast<RankedTensorType>(w.getType());
      SmallVector<OpFoldResult> wOffsets(type.getRank(), zero);
      SmallVector<OpFoldResult> wSizes = tensor::getMixedSizes(b, loc, w);
      wOffsets[0] = oOffset;
      wSizes[0] = oSize;
      return slice(b, loc, w, wOffsets, wSizes, result.generatedSlices);
    };
    operands.push_back(rowsOf(layer.getWeight()));
    if (Value bias = layer.getBias())
      operands.push_back(rowsOf(bias));
    if (Value base = layer.getBaseWeight())
      operands.push_back(rowsOf(base));
    if (layer.getNumerator()) {
      operands.push_back(layer.getNumerator());
      operands.push_back(layer.getDenominator());
    }

    SmallVector<int64_t> staticSizes;
    SmallVector<Value> dynamicSizes;
    dispatchIndexOpFoldResults(sizes, dynamicSizes, staticSizes);
    auto tileType =
        RankedTensorType::get(staticSizes, layer.getType().getElementType());
    Operation *tiled = mlir::clone(b, op, {tileType}, operands);
    result.tiledOps.push_back(tiled);
    result.tiledValues.push_back(tiled->getResult(0));
    return result;
  }
};

} // namespace

void moka::kan::registerTilingInterfaceExternalModels(
    DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, KANDialect *dialect) {
    RationalOp::attachInterface<RationalTilingModel>(*ctx);
    LayerOp::attachInterface<LayerTilingModel>(*ctx);
  });
}
