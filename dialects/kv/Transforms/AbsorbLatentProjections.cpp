//===- AbsorbLatentProjections.cpp - MLA's absorbed attention -------------===//
//
// Rewrites attention over keys and values reconstructed from a latent cache
// into attention on the latent, with the up-projections applied to the
// query before and to the output after.
//
//===----------------------------------------------------------------------===//

#include "moka/Dialect/KV/IR/KVOps.h"
#include "moka/Dialect/KV/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace moka::kv {
#define GEN_PASS_DEF_KVABSORBLATENTPROJECTIONSPASS
#include "moka/Dialect/KV/Transforms/Passes.h.inc"
} // namespace moka::kv

using namespace mlir;
using namespace moka;

namespace {

using utils::IteratorType;

/// `out[b, h, x] = sum_y in[b, h, y] * w[.., h, ..]` with the weight map
/// given: a per-head contraction.
Value perHead(OpBuilder &b, Location loc, Value in, Value weight,
              int64_t outWidth, bool weightIsRHD) {
  auto inType = cast<RankedTensorType>(in.getType());
  int64_t bsz = inType.getDimSize(0), h = inType.getDimSize(1);
  auto outType = RankedTensorType::get({bsz, h, outWidth}, b.getF32Type());
  Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0));
  Value empty =
      tensor::EmptyOp::create(b, loc, outType.getShape(), b.getF32Type());
  Value init = linalg::FillOp::create(b, loc, zero, empty).getResult(0);
  MLIRContext *ctx = b.getContext();
  AffineExpr bb, hh, x, y;
  bindDims(ctx, bb, hh, x, y);
  // weightIsRHD: w[r, h, d] with y = d, x = r (query side: q' = q up_k^T);
  // else w[r, h, d] with y = r, x = d (output side: o = o' up_v).
  AffineMap wMap = weightIsRHD ? AffineMap::get(4, 0, {x, hh, y}, ctx)
                               : AffineMap::get(4, 0, {y, hh, x}, ctx);
  return linalg::GenericOp::create(
             b, loc, TypeRange{outType}, ValueRange{in, weight},
             ValueRange{init},
             ArrayRef<AffineMap>{AffineMap::get(4, 0, {bb, hh, y}, ctx), wMap,
                                 AffineMap::get(4, 0, {bb, hh, x}, ctx)},
             ArrayRef<IteratorType>{
                 IteratorType::parallel, IteratorType::parallel,
                 IteratorType::parallel, IteratorType::reduction},
             [](OpBuilder &nb, Location nloc, ValueRange a) {
               Value p = arith::MulFOp::create(nb, nloc, a[0], a[1]);
               linalg::YieldOp::create(
                   nb, nloc,
                   arith::AddFOp::create(nb, nloc, a[2], p).getResult());
             })
      .getResult(0);
}

struct AbsorbUpProjections : public OpRewritePattern<kv::DecodeAttentionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(kv::DecodeAttentionOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.getUpKeys())
      return failure();
    Location loc = op.getLoc();
    auto cache = cast<kv::CacheType>(op.getCache().getType());
    int64_t r = cache.getRank(), d = cache.getHeadSize();
    Value qLatent = perHead(rewriter, loc, op.getQuery(), op.getUpKeys(), r,
                            /*weightIsRHD=*/true);
    auto attention = kv::DecodeAttentionOp::create(
        rewriter, loc, qLatent.getType(), qLatent, op.getCache(), Value(),
        Value(), rewriter.getF64FloatAttr(op.getEffectiveScale()));
    Value out = perHead(rewriter, loc, attention.getResult(), op.getUpValues(),
                        d, /*weightIsRHD=*/false);
    rewriter.replaceOp(op, out);
    return success();
  }
};

struct KVAbsorbLatentProjectionsPass
    : public kv::impl::KVAbsorbLatentProjectionsPassBase<
          KVAbsorbLatentProjectionsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<AbsorbUpProjections>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
