//===- DecomposeLayers.cpp - moe.layer into its steps ---------------------===//
//
// Expands `moe.layer` into the gate product, `moe.route`, `moe.dispatch`,
// `moe.experts`, `moe.shared_experts` and `moe.combine`.
//
//===----------------------------------------------------------------------===//

#include "moka/Dialect/MoE/IR/MoEOps.h"
#include "moka/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace moka::moe {
#define GEN_PASS_DEF_MOEDECOMPOSELAYERSPASS
#include "moka/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moka::moe

using namespace mlir;
using namespace moka::moe;

namespace {

/// logits[T, E] = x[T, d] @ gate[E, d]^T in f32, through the transposed gate
/// (experts contiguous).
Value gateLogits(OpBuilder &b, Location loc, Value x, Value gate) {
  MLIRContext *ctx = b.getContext();
  auto gateType = cast<RankedTensorType>(gate.getType());
  Value gateInit = tensor::EmptyOp::create(
      b, loc,
      ArrayRef<OpFoldResult>{tensor::getMixedSize(b, loc, gate, 1),
                             b.getIndexAttr(gateType.getDimSize(0))},
      gateType.getElementType());
  Value gateT = linalg::TransposeOp::create(b, loc, gate, gateInit,
                                            ArrayRef<int64_t>{1, 0})
                    .getResult()[0];
  SmallVector<OpFoldResult> sizes = {tensor::getMixedSize(b, loc, x, 0),
                                     b.getIndexAttr(gateType.getDimSize(0))};
  Value empty = tensor::EmptyOp::create(b, loc, sizes, b.getF32Type());
  Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0));
  Value acc = linalg::FillOp::create(b, loc, zero, empty).getResult(0);
  auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  auto fm = arith::FastMathFlags::contract;
  return linalg::GenericOp::create(
             b, loc, TypeRange{acc.getType()}, ValueRange{x, gateT},
             ValueRange{acc},
             ArrayRef<AffineMap>{AffineMap::get(3, 0, {d(0), d(2)}, ctx),
                                 AffineMap::get(3, 0, {d(2), d(1)}, ctx),
                                 AffineMap::get(3, 0, {d(0), d(1)}, ctx)},
             {utils::IteratorType::parallel, utils::IteratorType::parallel,
              utils::IteratorType::reduction},
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               auto f32 = [&](Value v) -> Value {
                 return v.getType().isF32()
                            ? v
                            : arith::ExtFOp::create(nb, nl, nb.getF32Type(), v);
               };
               Value p = arith::MulFOp::create(nb, nl, f32(args[0]),
                                               f32(args[1]), fm);
               linalg::YieldOp::create(
                   nb, nl,
                   arith::AddFOp::create(nb, nl, args[2], p, fm).getResult());
             })
      .getResult(0);
}

struct DecomposeLayer : OpRewritePattern<LayerOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(LayerOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = op.getInput();
    auto xType = cast<RankedTensorType>(x.getType());
    int64_t tokens = xType.getDimSize(0), d = xType.getDimSize(1);
    int64_t experts = op.getGate().getType().getDimSize(0);
    int64_t k = op.getK();
    Type f32 = rewriter.getF32Type(), i32 = rewriter.getI32Type();

    Value logits = gateLogits(rewriter, loc, x, op.getGate());
    auto slotType = RankedTensorType::get({tokens, k}, f32);
    auto idxType = RankedTensorType::get({tokens, k}, i32);
    auto route = RouteOp::create(
        rewriter, loc, TypeRange{slotType, idxType}, logits, op.getBias(),
        op.getKAttr(), op.getScoringAttr(), op.getNGroupAttr(),
        op.getTopkGroupAttr(), op.getGroupScoreAttr(), op.getNormalizeAttr(),
        op.getRoutedScalingFactorAttr());
    int64_t assignments =
        ShapedType::isDynamic(tokens) ? ShapedType::kDynamic : tokens * k;
    auto dispatch = DispatchOp::create(
        rewriter, loc,
        TypeRange{RankedTensorType::get({assignments}, i32),
                  RankedTensorType::get({experts + 1}, i32), idxType},
        route.getExperts(), rewriter.getI64IntegerAttr(experts),
        op.getCapacityFactorAttr());
    auto rowsType = RankedTensorType::get({assignments, d}, f32);
    Value y = ExpertsOp::create(rewriter, loc, rowsType, x, dispatch.getRows(),
                                dispatch.getOffsets(), op.getW1(), op.getW2(),
                                op.getW3(), Value(), Value(), Value(), Value(),
                                op.getKindAttr());
    auto outType = RankedTensorType::get({tokens, d}, f32);
    Value shared;
    if (op.getSharedW1())
      shared = SharedExpertsOp::create(
          rewriter, loc, outType, x, op.getSharedW1(), op.getSharedW2(),
          op.getSharedW3(), op.getSharedGate(), op.getKindAttr());
    Value out =
        CombineOp::create(rewriter, loc, outType, y, dispatch.getSlots(),
                          route.getWeights(), shared);
    if (out.getType() != op.getType())
      out = tensor::CastOp::create(rewriter, loc, op.getType(), out);
    rewriter.replaceOp(op, out);
    return success();
  }
};

struct MoEDecomposeLayersPass
    : moka::moe::impl::MoEDecomposeLayersPassBase<MoEDecomposeLayersPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<DecomposeLayer>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
