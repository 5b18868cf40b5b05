//===- KANToLinalg.cpp - Lowering of `kan` to `linalg` --------------------===//
//
// Rewrites `kan` operations as `linalg.generic` on tensors.
//
//===----------------------------------------------------------------------===//

#include "moka/Conversion/KANToLinalg/KANToLinalg.h"
#include "moka/Conversion/Passes.h"
#include "moka/Dialect/KAN/IR/KANOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Transforms/DialectConversion.h"

namespace moka {
#define GEN_PASS_DEF_CONVERTKANTOLINALGPASS
#include "moka/Conversion/Passes.h.inc"
} // namespace moka

using namespace mlir;
using namespace moka;

namespace {

/// Applies `fn` (if any) to every element of the 2-D tensor `src` converted
/// to f32, producing an f32 tensor of the same shape.
Value mapToF32(OpBuilder &b, Location loc, Value src,
               function_ref<Value(OpBuilder &, Location, Value)> fn) {
  auto type = cast<RankedTensorType>(src.getType());
  Type f32 = b.getF32Type();
  if (type.getElementType() == f32 && !fn)
    return src;
  Value init = tensor::EmptyOp::create(b, loc, type.getShape(), f32);
  AffineMap id = b.getMultiDimIdentityMap(type.getRank());
  SmallVector<utils::IteratorType> iterators(type.getRank(),
                                             utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, ValueRange{src}, ValueRange{init},
      ArrayRef<AffineMap>{id, id}, iterators,
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        Value v = args[0];
        if (!v.getType().isF32())
          v = arith::ExtFOp::create(nb, nloc, nb.getF32Type(), v);
        linalg::YieldOp::create(nb, nloc, fn ? fn(nb, nloc, v) : v);
      });
  return generic.getResult(0);
}

/// Extracts column `col` of the coefficient matrix `coeffs[R, K]`: a tensor of
/// shape `[R]`, or a 0-d tensor when `scalar` (R == 1, broadcast to all
/// groups).
Value extractColumn(OpBuilder &b, Location loc, Value coeffs, int64_t col,
                    bool scalar) {
  auto type = cast<RankedTensorType>(coeffs.getType());
  int64_t rows = type.getDimSize(0);
  RankedTensorType resultType =
      scalar ? RankedTensorType::get({}, type.getElementType())
             : RankedTensorType::get({rows}, type.getElementType());
  SmallVector<OpFoldResult> offsets = {b.getIndexAttr(0), b.getIndexAttr(col)};
  SmallVector<OpFoldResult> sizes = {b.getIndexAttr(rows), b.getIndexAttr(1)};
  SmallVector<OpFoldResult> strides = {b.getIndexAttr(1), b.getIndexAttr(1)};
  return tensor::ExtractSliceOp::create(b, loc, resultType, coeffs, offsets,
                                        sizes, strides);
}

struct RationalOpLowering : OpConversionPattern<kan::RationalOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(kan::RationalOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = adaptor.getInput();
    auto xType = cast<RankedTensorType>(x.getType());
    Type elt = xType.getElementType();
    Type f32 = rewriter.getF32Type();
    int64_t rank = xType.getRank();
    int64_t groups = op.getNumGroups();
    int64_t m = op.getM(), n = op.getN();
    bool shared = op.hasSharedNumerator();

    // Channels-last view [..., G, C/G] of the input: a reshape, not a copy.
    // Leading dimensions are kept as they are (folding several dynamic ones
    // into one would need a multi-dynamic-dim expand_shape on the way back).
    int64_t channels = xType.getDimSize(rank - 1);
    OpFoldResult perGroup;
    int64_t perGroupStatic = ShapedType::kDynamic;
    if (ShapedType::isDynamic(channels)) {
      // The verifier checks divisibility of a static C; a dynamic one is
      // checked at run time.
      Value c = tensor::DimOp::create(rewriter, loc, x, rank - 1);
      Value g = arith::ConstantIndexOp::create(rewriter, loc, groups);
      Value rem = arith::RemUIOp::create(rewriter, loc, c, g);
      Value zero = arith::ConstantIndexOp::create(rewriter, loc, 0);
      Value divisible = arith::CmpIOp::create(
          rewriter, loc, arith::CmpIPredicate::eq, rem, zero);
      cf::AssertOp::create(rewriter, loc, divisible,
                           "kan.rational: channel count is not divisible by "
                           "the number of groups");
      perGroup = arith::DivUIOp::create(rewriter, loc, c, g).getResult();
    } else {
      perGroupStatic = channels / groups;
      perGroup = rewriter.getIndexAttr(perGroupStatic);
    }
    SmallVector<OpFoldResult> groupedSizes =
        tensor::getMixedSizes(rewriter, loc, x);
    groupedSizes.back() = rewriter.getIndexAttr(groups);
    groupedSizes.push_back(perGroup);
    SmallVector<int64_t> groupedShape(xType.getShape());
    groupedShape.back() = groups;
    groupedShape.push_back(perGroupStatic);
    auto groupedType = RankedTensorType::get(groupedShape, elt);
    SmallVector<ReassociationIndices> reassociation;
    for (int64_t i = 0; i < rank - 1; ++i)
      reassociation.push_back({i});
    reassociation.push_back({rank - 1, rank});
    Value grouped = tensor::ExpandShapeOp::create(rewriter, loc, groupedType, x,
                                                  reassociation, groupedSizes);

    // Coefficients are converted to f32 once, and the denominator's absolute
    // value taken once, rather than for every element.
    Value num = mapToF32(rewriter, loc, adaptor.getNumerator(), nullptr);
    Value den = mapToF32(rewriter, loc, adaptor.getDenominator(),
                         [](OpBuilder &b, Location l, Value v) -> Value {
                           return math::AbsFOp::create(b, l, v);
                         });

    MLIRContext *ctx = rewriter.getContext();
    int64_t loops = rank + 1;
    AffineMap identity = AffineMap::getMultiDimIdentityMap(loops, ctx);
    AffineMap perGroupMap =
        AffineMap::get(loops, 0, {getAffineDimExpr(rank - 1, ctx)}, ctx);
    AffineMap scalarMap = AffineMap::get(loops, 0, {}, ctx);

    SmallVector<Value> inputs = {grouped};
    SmallVector<AffineMap> maps = {identity};
    for (int64_t i = 0; i <= m; ++i) {
      inputs.push_back(extractColumn(rewriter, loc, num, i, shared));
      maps.push_back(shared ? scalarMap : perGroupMap);
    }
    for (int64_t j = 0; j < n; ++j) {
      inputs.push_back(extractColumn(rewriter, loc, den, j, false));
      maps.push_back(perGroupMap);
    }
    maps.push_back(identity);

    Value init = tensor::EmptyOp::create(rewriter, loc, groupedSizes, elt);
    SmallVector<utils::IteratorType> iterators(loops,
                                               utils::IteratorType::parallel);
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{groupedType}, inputs, ValueRange{init}, maps,
        iterators, [&](OpBuilder &b, Location l, ValueRange args) {
          Value v = args[0];
          if (elt != f32)
            v = arith::ExtFOp::create(b, l, f32, v);
          // Horner's rule, highest coefficient first.
          Value p = args[1 + m];
          for (int64_t i = m - 1; i >= 0; --i)
            p = math::FmaOp::create(b, l, p, v, args[1 + i]);
          Value y = p;
          if (n > 0) {
            Value a = math::AbsFOp::create(b, l, v);
            int64_t base = m + 2;
            Value q = args[base + n - 1];
            for (int64_t j = n - 2; j >= 0; --j)
              q = math::FmaOp::create(b, l, q, a, args[base + j]);
            Value one = arith::ConstantOp::create(b, l, b.getF32FloatAttr(1));
            q = math::FmaOp::create(b, l, q, a, one);
            y = arith::DivFOp::create(b, l, p, q);
          }
          if (elt != f32)
            y = arith::TruncFOp::create(b, l, elt, y);
          linalg::YieldOp::create(b, l, y);
        });

    // Back to the caller's shape.
    Value result = tensor::CollapseShapeOp::create(
        rewriter, loc, xType, generic.getResult(0), reassociation);
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct ConvertKANToLinalgPass
    : moka::impl::ConvertKANToLinalgPassBase<ConvertKANToLinalgPass> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    ConversionTarget target(*ctx);
    target.addIllegalDialect<kan::KANDialect>();
    target.addLegalDialect<arith::ArithDialect, cf::ControlFlowDialect,
                           linalg::LinalgDialect, math::MathDialect,
                           tensor::TensorDialect>();
    RewritePatternSet patterns(ctx);
    populateKANToLinalgConversionPatterns(patterns);
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void moka::populateKANToLinalgConversionPatterns(RewritePatternSet &patterns) {
  patterns.add<RationalOpLowering>(patterns.getContext());
}
