//===- ExpandLayers.cpp - kan.layer to basis expansions and products ------===//
//
// Expands `kan.layer` into element-wise basis expansions and contractions on
// tensors.
//
//===----------------------------------------------------------------------===//

#include "moka/Dialect/KAN/Transforms/Passes.h"
#include "moka/Dialect/KAN/Transforms/Transforms.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace moka::kan {
#define GEN_PASS_DEF_KANEXPANDLAYERSPASS
#include "moka/Dialect/KAN/Transforms/Passes.h.inc"
} // namespace moka::kan

using namespace mlir;
using namespace moka::kan;

namespace {

Value toF32(OpBuilder &b, Location loc, Value v) {
  if (v.getType().isF32())
    return v;
  return arith::ExtFOp::create(b, loc, b.getF32Type(), v);
}

/// An all-parallel generic over `sizes` (one loop per size) producing an f32
/// tensor of those sizes from `inputs` read through `maps`; `body` gets the
/// input elements and returns the result element.
Value mapGeneric(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
                 ValueRange inputs, ArrayRef<AffineMap> maps, Type resultElt,
                 function_ref<Value(OpBuilder &, Location, ValueRange)> body) {
  Value init = tensor::EmptyOp::create(b, loc, sizes, resultElt);
  unsigned loops = sizes.size();
  SmallVector<AffineMap> allMaps(maps);
  allMaps.push_back(b.getMultiDimIdentityMap(loops));
  SmallVector<utils::IteratorType> iterators(loops,
                                             utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, inputs, ValueRange{init}, allMaps,
      iterators, [&](OpBuilder &nb, Location nl, ValueRange args) {
        linalg::YieldOp::create(nb, nl, body(nb, nl, args.drop_back()));
      });
  return generic.getResult(0);
}

/// `w[o, i[, k]]` with the output channels moved innermost, `[i[, k], o]`,
/// so that a tile of output channels is contiguous in memory.
Value outputChannelsLast(OpBuilder &b, Location loc, Value w) {
  auto type = cast<RankedTensorType>(w.getType());
  int64_t rank = type.getRank();
  SmallVector<int64_t> perm;
  for (int64_t d = 1; d < rank; ++d)
    perm.push_back(d);
  perm.push_back(0);
  SmallVector<OpFoldResult> sizes;
  for (int64_t d : perm)
    sizes.push_back(tensor::getMixedSize(b, loc, w, d));
  Value init = tensor::EmptyOp::create(b, loc, sizes, type.getElementType());
  return linalg::TransposeOp::create(b, loc, w, init, perm).getResult()[0];
}

/// The body of every contraction: acc + lhs * w in f32; `contract` lets the
/// multiply and add become one FMA.
void buildMulAdd(OpBuilder &b, Location loc, ValueRange args) {
  auto fm = arith::FastMathFlags::contract;
  Value prod = arith::MulFOp::create(b, loc, toF32(b, loc, args[0]),
                                     toF32(b, loc, args[1]), fm);
  linalg::YieldOp::create(
      b, loc, arith::AddFOp::create(b, loc, args[2], prod, fm).getResult());
}

/// acc[lead..., o] += sum_{i[, k]} lhs[lead..., i[, k]] * w[o, i[, k]], in
/// f32. The weight is read in a layout with output channels innermost: when
/// `panel` divides a static Cout, as panels `[Cout / panel, i[, k], panel]`
/// (each panel contiguous, so a register tile of output channels streams
/// through memory), otherwise as the transpose `[i[, k], o]`.
Value contract(OpBuilder &b, Location loc, Value lhs, Value w, Value acc,
               bool hasK, int64_t panel) {
  MLIRContext *ctx = b.getContext();
  auto wType = cast<RankedTensorType>(w.getType());
  auto accType = cast<RankedTensorType>(acc.getType());
  int64_t cout = wType.getDimSize(0);
  int64_t lead = accType.getRank() - 1;
  bool packed = panel > 0 && !ShapedType::isDynamic(cout) &&
                cout % panel == 0 && cout > panel;
  auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  SmallVector<AffineExpr> lhsExprs, outExprs;
  for (unsigned l = 0; l < lead; ++l) {
    lhsExprs.push_back(d(l));
    outExprs.push_back(d(l));
  }
  SmallVector<utils::IteratorType> iterators;

  Value wt, accView = acc;
  SmallVector<AffineExpr> wExprs;
  unsigned loops;
  if (!packed) {
    // Loops (lead..., o, i[, k]).
    unsigned o = lead, i = lead + 1, k = lead + 2;
    loops = lead + 2 + (hasK ? 1 : 0);
    wt = outputChannelsLast(b, loc, w);
    lhsExprs.push_back(d(i));
    wExprs.push_back(d(i));
    if (hasK) {
      lhsExprs.push_back(d(k));
      wExprs.push_back(d(k));
    }
    wExprs.push_back(d(o));
    outExprs.push_back(d(o));
    iterators.assign(lead + 1, utils::IteratorType::parallel);
  } else {
    // Loops (lead..., panel index, lane, i[, k]).
    unsigned ob = lead, ol = lead + 1, i = lead + 2, k = lead + 3;
    loops = lead + 3 + (hasK ? 1 : 0);
    int64_t panels = cout / panel;
    SmallVector<int64_t> expShape = {panels, panel};
    expShape.append(wType.getShape().begin() + 1, wType.getShape().end());
    SmallVector<ReassociationIndices> wReassoc = {{0, 1}};
    for (int64_t r = 1; r < wType.getRank(); ++r)
      wReassoc.push_back({r + 1});
    Value wExp = tensor::ExpandShapeOp::create(
        b, loc, RankedTensorType::get(expShape, wType.getElementType()), w,
        wReassoc);
    SmallVector<int64_t> perm = {0};
    for (int64_t r = 2; r < static_cast<int64_t>(expShape.size()); ++r)
      perm.push_back(r);
    perm.push_back(1);
    SmallVector<OpFoldResult> sizes;
    for (int64_t p : perm)
      sizes.push_back(tensor::getMixedSize(b, loc, wExp, p));
    Value init = tensor::EmptyOp::create(b, loc, sizes, wType.getElementType());
    wt = linalg::TransposeOp::create(b, loc, wExp, init, perm).getResult()[0];

    SmallVector<ReassociationIndices> accReassoc;
    for (int64_t l = 0; l < lead; ++l)
      accReassoc.push_back({l});
    accReassoc.push_back({lead, lead + 1});
    SmallVector<int64_t> accShape(accType.getShape().drop_back());
    accShape.append({panels, panel});
    SmallVector<OpFoldResult> accSizes = tensor::getMixedSizes(b, loc, acc);
    accSizes.back() = b.getIndexAttr(panels);
    accSizes.push_back(b.getIndexAttr(panel));
    accView = tensor::ExpandShapeOp::create(
        b, loc, RankedTensorType::get(accShape, accType.getElementType()), acc,
        accReassoc, accSizes);

    lhsExprs.push_back(d(i));
    wExprs = {d(ob), d(i)};
    if (hasK) {
      lhsExprs.push_back(d(k));
      wExprs.push_back(d(k));
    }
    wExprs.push_back(d(ol));
    outExprs.push_back(d(ob));
    outExprs.push_back(d(ol));
    iterators.assign(lead + 2, utils::IteratorType::parallel);
  }
  iterators.append(hasK ? 2 : 1, utils::IteratorType::reduction);
  SmallVector<AffineMap> maps = {AffineMap::get(loops, 0, lhsExprs, ctx),
                                 AffineMap::get(loops, 0, wExprs, ctx),
                                 AffineMap::get(loops, 0, outExprs, ctx)};
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{accView.getType()}, ValueRange{lhs, wt},
      ValueRange{accView}, maps, iterators, buildMulAdd);
  Value result = generic.getResult(0);
  if (packed) {
    SmallVector<ReassociationIndices> reassoc;
    for (int64_t l = 0; l < lead; ++l)
      reassoc.push_back({l});
    reassoc.push_back({lead, lead + 1});
    result = tensor::CollapseShapeOp::create(b, loc, accType, result, reassoc);
  }
  return result;
}

/// Run-time checks of the dimensions that must agree but are not all known
/// statically: without them a mismatched weight would be read out of bounds.
void checkShapes(OpBuilder &b, LayerOp op, ArrayRef<OpFoldResult> xSizes) {
  Location loc = op.getLoc();
  Value w = op.getWeight();
  OpFoldResult cin = xSizes.back();
  OpFoldResult cout = tensor::getMixedSize(b, loc, w, 0);
  assertSameSize(b, loc, tensor::getMixedSize(b, loc, w, 1), cin,
                 "kan.layer: weight input channels differ from the input's");
  if (op.getBasis() != Basis::rational)
    assertSameSize(b, loc, tensor::getMixedSize(b, loc, w, 2),
                   b.getIndexAttr(op.getNumBasisFunctions()),
                   "kan.layer: weight basis functions differ from the basis'");
  if (Value bias = op.getBias())
    assertSameSize(b, loc, tensor::getMixedSize(b, loc, bias, 0), cout,
                   "kan.layer: bias size differs from the output channels");
  if (Value base = op.getBaseWeight()) {
    assertSameSize(b, loc, tensor::getMixedSize(b, loc, base, 0), cout,
                   "kan.layer: base_weight rows differ from the output "
                   "channels");
    assertSameSize(b, loc, tensor::getMixedSize(b, loc, base, 1), cin,
                   "kan.layer: base_weight columns differ from the input "
                   "channels");
  }
  auto resultType = cast<RankedTensorType>(op.getType());
  for (int64_t i = 0, e = resultType.getRank(); i < e; ++i) {
    if (resultType.isDynamicDim(i))
      continue;
    OpFoldResult expected = i + 1 == e ? cout : xSizes[i];
    assertSameSize(b, loc, b.getIndexAttr(resultType.getDimSize(i)), expected,
                   "kan.layer: result shape differs from the computed one");
  }
}

struct ExpandLayer : OpRewritePattern<LayerOp> {
  ExpandLayer(MLIRContext *ctx, int64_t panel)
      : OpRewritePattern(ctx), panel(panel) {}
  int64_t panel;

  LogicalResult matchAndRewrite(LayerOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value x = op.getInput();
    // A layer whose result feeds a rational keeps its output unreshaped, so
    // that the rational can be fused into this layer's tile as an epilogue
    // (tile-and-fuse does not see through the reshape a panel view needs).
    bool feedsRational = llvm::any_of(op->getUsers(), [&](Operation *user) {
      if (isa<RationalOp>(user))
        return true;
      auto next = dyn_cast<LayerOp>(user);
      return next && next.getBasis() == Basis::rational &&
             next.getInput() == op.getResult();
    });
    int64_t panel = feedsRational ? 0 : this->panel;
    auto xType = cast<RankedTensorType>(x.getType());
    Type elt = xType.getElementType();
    Type f32 = rewriter.getF32Type();
    int64_t rank = xType.getRank();

    SmallVector<OpFoldResult> xSizes = tensor::getMixedSizes(rewriter, loc, x);
    SmallVector<OpFoldResult> outSizes(xSizes.begin(), xSizes.end() - 1);
    outSizes.push_back(tensor::getMixedSize(rewriter, loc, op.getWeight(), 0));
    unsigned outLoops = outSizes.size();
    checkShapes(rewriter, op, xSizes);

    // Accumulator: the broadcast bias, or zero.
    Value acc;
    if (Value bias = op.getBias()) {
      AffineMap biasMap = AffineMap::get(
          outLoops, 0, {getAffineDimExpr(outLoops - 1, ctx)}, ctx);
      acc = mapGeneric(rewriter, loc, outSizes, bias, biasMap, f32,
                       [](OpBuilder &b, Location l, ValueRange args) {
                         return toF32(b, l, args[0]);
                       });
    } else {
      Value empty = tensor::EmptyOp::create(rewriter, loc, outSizes, f32);
      Value zero =
          arith::ConstantOp::create(rewriter, loc, rewriter.getF32FloatAttr(0));
      acc = linalg::FillOp::create(rewriter, loc, zero, empty).getResult(0);
    }

    AffineMap xIdentity = rewriter.getMultiDimIdentityMap(rank);
    if (Value base = op.getBaseWeight()) {
      Value silu = mapGeneric(rewriter, loc, xSizes, x, xIdentity, f32,
                              [](OpBuilder &b, Location l, ValueRange args) {
                                return buildSiLU(b, l, toF32(b, l, args[0]));
                              });
      acc = contract(rewriter, loc, silu, base, acc, /*hasK=*/false, panel);
    }

    if (op.getBasis() == Basis::rational) {
      auto numType = cast<RankedTensorType>(op.getNumerator().getType());
      auto denType = cast<RankedTensorType>(op.getDenominator().getType());
      Value act = RationalOp::create(
          rewriter, loc, xType, x, op.getNumerator(), op.getDenominator(),
          rewriter.getI64IntegerAttr(numType.getDimSize(1) - 1),
          rewriter.getI64IntegerAttr(denType.getDimSize(1)));
      acc = contract(rewriter, loc, act, op.getWeight(), acc,
                     /*hasK=*/false, panel);
    } else {
      BasisParams params = BasisParams::get(op);
      SmallVector<OpFoldResult> phiSizes(xSizes);
      phiSizes.push_back(rewriter.getIndexAttr(params.numFunctions));
      SmallVector<AffineExpr> xExprs;
      for (int64_t i = 0; i < rank; ++i)
        xExprs.push_back(getAffineDimExpr(i, ctx));
      AffineMap xMap = AffineMap::get(rank + 1, 0, xExprs, ctx);
      Value phi = mapGeneric(rewriter, loc, phiSizes, x, xMap, f32,
                             [&](OpBuilder &b, Location l, ValueRange args) {
                               Value k = linalg::IndexOp::create(b, l, rank);
                               return buildBasisFunction(
                                   b, l, params, toF32(b, l, args[0]), k);
                             });
      acc = contract(rewriter, loc, phi, op.getWeight(), acc, /*hasK=*/true,
                     panel);
    }

    if (elt != f32) {
      AffineMap id = rewriter.getMultiDimIdentityMap(outLoops);
      acc = mapGeneric(
          rewriter, loc, outSizes, acc, id, elt,
          [&](OpBuilder &b, Location l, ValueRange args) {
            return arith::TruncFOp::create(b, l, elt, args[0]).getResult();
          });
    }
    if (acc.getType() != op.getType())
      acc = tensor::CastOp::create(rewriter, loc, op.getType(), acc);
    rewriter.replaceOp(op, acc);
    return success();
  }
};

struct KANExpandLayersPass
    : moka::kan::impl::KANExpandLayersPassBase<KANExpandLayersPass> {
  using Base::Base;
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateExpandLayerPatterns(patterns, weightPanel);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void moka::kan::populateExpandLayerPatterns(RewritePatternSet &patterns,
                                            int64_t weightPanel) {
  patterns.add<ExpandLayer>(patterns.getContext(), weightPanel);
}
