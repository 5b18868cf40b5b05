//===- LowerDynamicExpandShape.cpp - expand_shape as reinterpret_cast -----===//
//
// Rewrites memref.expand_shape ops that have more than one dynamic size in a
// reassociation group, which LLVM 22's expand-strided-metadata cannot lower,
// into a memref.reinterpret_cast of the source's base buffer.
//
//===----------------------------------------------------------------------===//

#include "moka/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace moka {
#define GEN_PASS_DEF_LOWERDYNAMICEXPANDSHAPEPASS
#include "moka/Transforms/Passes.h.inc"
} // namespace moka

using namespace mlir;

namespace {

bool hasSeveralDynamicSizesInAGroup(memref::ExpandShapeOp op) {
  MemRefType type = op.getResultType();
  for (const ReassociationIndices &group : op.getReassociationIndices())
    if (llvm::count_if(group, [&](int64_t d) { return type.isDynamicDim(d); }) >
        1)
      return true;
  return false;
}

struct ExpandShapeToReinterpretCast
    : public OpRewritePattern<memref::ExpandShapeOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(memref::ExpandShapeOp op,
                                PatternRewriter &rewriter) const override {
    if (!hasSeveralDynamicSizesInAGroup(op))
      return failure();
    MemRefType resultType = op.getResultType();
    SmallVector<int64_t> resultStrides;
    int64_t resultOffset;
    if (failed(resultType.getStridesAndOffset(resultStrides, resultOffset)))
      return rewriter.notifyMatchFailure(op, "result layout is not strided");

    Location loc = op.getLoc();
    auto metadata =
        memref::ExtractStridedMetadataOp::create(rewriter, loc, op.getSrc());
    SmallVector<OpFoldResult> sizes = op.getMixedOutputShape();
    SmallVector<OpFoldResult> strides(resultType.getRank());
    for (auto [srcDim, group] : llvm::enumerate(op.getReassociationIndices())) {
      // The innermost dimension of a group keeps the source's stride; each
      // outer one steps over the dimension inside it.
      Value stride = metadata.getStrides()[srcDim];
      for (int64_t d : llvm::reverse(group)) {
        strides[d] = stride;
        Value size = getValueOrCreateConstantIndexOp(rewriter, loc, sizes[d]);
        stride = arith::MulIOp::create(rewriter, loc, stride, size);
      }
    }
    // Where the result type states a stride or the offset statically, the
    // verified op guarantees the computed value equals it.
    for (auto [d, s] : llvm::enumerate(resultStrides))
      if (!ShapedType::isDynamic(s))
        strides[d] = rewriter.getIndexAttr(s);
    OpFoldResult offset =
        ShapedType::isDynamic(resultOffset)
            ? OpFoldResult(metadata.getOffset())
            : OpFoldResult(rewriter.getIndexAttr(resultOffset));
    rewriter.replaceOpWithNewOp<memref::ReinterpretCastOp>(
        op, resultType, metadata.getBaseBuffer(), offset, sizes, strides);
    return success();
  }
};

struct LowerDynamicExpandShapePass
    : public moka::impl::LowerDynamicExpandShapePassBase<
          LowerDynamicExpandShapePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<ExpandShapeToReinterpretCast>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
