//===- MoEToLinalg.cpp - Lowering of `moe` to `linalg` --------------------===//
//
// Rewrites `moe` operations as linalg, scf and tensor operations on tensors.
//
//===----------------------------------------------------------------------===//

#include "moka/Conversion/MoEToLinalg/MoEToLinalg.h"
#include "moka/Conversion/Passes.h"
#include "moka/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/DialectConversion.h"

#include <limits>

namespace moka {
#define GEN_PASS_DEF_CONVERTMOETOLINALGPASS
#include "moka/Conversion/Passes.h.inc"
} // namespace moka

using namespace mlir;
using namespace moka;

namespace {

Value f32Const(OpBuilder &b, Location loc, double v) {
  return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
}

Value indexConst(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

Value toF32(OpBuilder &b, Location loc, Value v) {
  return v.getType().isF32() ? v
                             : arith::ExtFOp::create(b, loc, b.getF32Type(), v);
}

/// An all-parallel generic over `sizes` producing f32 from `inputs` read
/// through `maps`.
Value mapF32(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
             ValueRange inputs, ArrayRef<AffineMap> maps,
             function_ref<Value(OpBuilder &, Location, ValueRange)> body) {
  Value init = tensor::EmptyOp::create(b, loc, sizes, b.getF32Type());
  SmallVector<AffineMap> all(maps);
  all.push_back(b.getMultiDimIdentityMap(sizes.size()));
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()}, inputs, ValueRange{init}, all,
             SmallVector<utils::IteratorType>(sizes.size(),
                                              utils::IteratorType::parallel),
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               linalg::YieldOp::create(nb, nl, body(nb, nl, args.drop_back()));
             })
      .getResult(0);
}

/// Reduces `src[T, E]` over E into `[T]` with `combine`, from `initValue`.
Value reduceRows(
    OpBuilder &b, Location loc, Value src, double initValue,
    function_ref<Value(OpBuilder &, Location, Value, Value)> combine) {
  MLIRContext *ctx = b.getContext();
  OpFoldResult rows = tensor::getMixedSize(b, loc, src, 0);
  Value empty = tensor::EmptyOp::create(b, loc, ArrayRef<OpFoldResult>{rows},
                                        b.getF32Type());
  Value init =
      linalg::FillOp::create(b, loc, f32Const(b, loc, initValue), empty)
          .getResult(0);
  auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()}, ValueRange{src},
             ValueRange{init},
             ArrayRef<AffineMap>{AffineMap::get(2, 0, {d(0), d(1)}, ctx),
                                 AffineMap::get(2, 0, {d(0)}, ctx)},
             {utils::IteratorType::parallel, utils::IteratorType::reduction},
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               linalg::YieldOp::create(nb, nl,
                                       combine(nb, nl, args[1], args[0]));
             })
      .getResult(0);
}

/// One pass of top-k selection over `count` candidates whose keys come from
/// `keyAt(i)`: the best candidate after the previous pick (`prevKey`,
/// `prevIdx`; `prevIdx < 0` for the first pass) in the order (key
/// descending, index ascending), among those `allowed(i)` accepts. Returns
/// (key, index); index -1 when none is left.
std::pair<Value, Value>
selectNext(OpBuilder &b, Location loc, int64_t count, Value prevKey,
           Value prevIdx,
           function_ref<Value(OpBuilder &, Location, Value)> keyAt,
           function_ref<Value(OpBuilder &, Location, Value)> allowed) {
  Value minusOne = indexConst(b, loc, -1);
  Value negInf = f32Const(b, loc, -std::numeric_limits<double>::infinity());
  auto loop = scf::ForOp::create(
      b, loc, indexConst(b, loc, 0), indexConst(b, loc, count),
      indexConst(b, loc, 1), ValueRange{negInf, minusOne},
      [&](OpBuilder &nb, Location nl, Value i, ValueRange args) {
        Value key = keyAt(nb, nl, i);
        Value first = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::slt,
                                            prevIdx, indexConst(nb, nl, 0));
        Value below = arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OLT,
                                            key, prevKey);
        Value tieAfter = arith::AndIOp::create(
            nb, nl,
            arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OEQ, key,
                                  prevKey),
            arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::sgt, i,
                                  prevIdx));
        Value eligible = arith::OrIOp::create(
            nb, nl, first, arith::OrIOp::create(nb, nl, below, tieAfter));
        if (allowed)
          eligible =
              arith::AndIOp::create(nb, nl, eligible, allowed(nb, nl, i));
        // Strictly better, or the first eligible one (keys may be -inf).
        Value none = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::slt,
                                           args[1], indexConst(nb, nl, 0));
        Value better = arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OGT,
                                             key, args[0]);
        Value take = arith::AndIOp::create(
            nb, nl, eligible, arith::OrIOp::create(nb, nl, none, better));
        scf::YieldOp::create(
            nb, nl,
            ValueRange{arith::SelectOp::create(nb, nl, take, key, args[0]),
                       arith::SelectOp::create(nb, nl, take, i, args[1])});
      });
  return {loop.getResult(0), loop.getResult(1)};
}

struct RouteOpLowering : OpConversionPattern<moe::RouteOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(moe::RouteOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value logits = adaptor.getLogits();
    int64_t numExperts = op.getNumExperts();
    int64_t k = op.getK();
    int64_t groups = op.getNGroup(), keep = op.getTopkGroup();
    int64_t perGroup = numExperts / groups;
    bool groupLimited = groups > 1 && keep < groups;
    bool top2 = op.getGroupScore() == moe::GroupScore::top2_sum;
    Type f32 = rewriter.getF32Type();
    Type i32 = rewriter.getI32Type();
    auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
    AffineMap id2 = AffineMap::get(2, 0, {d(0), d(1)}, ctx);
    AffineMap row2 = AffineMap::get(2, 0, {d(0)}, ctx);
    AffineMap col2 = AffineMap::get(2, 0, {d(1)}, ctx);
    SmallVector<OpFoldResult> sizes =
        tensor::getMixedSizes(rewriter, loc, logits);

    // Scores.
    Value scores;
    if (op.getScoring() == moe::Scoring::softmax) {
      Value l32 = mapF32(rewriter, loc, sizes, logits, id2,
                         [](OpBuilder &b, Location l, ValueRange a) {
                           return toF32(b, l, a[0]);
                         });
      Value rowMax = reduceRows(
          rewriter, loc, l32, -std::numeric_limits<double>::infinity(),
          [](OpBuilder &b, Location l, Value acc, Value v) {
            return arith::MaximumFOp::create(b, l, acc, v).getResult();
          });
      Value e =
          mapF32(rewriter, loc, sizes, ValueRange{l32, rowMax}, {id2, row2},
                 [](OpBuilder &b, Location l, ValueRange a) {
                   return math::ExpOp::create(
                              b, l, arith::SubFOp::create(b, l, a[0], a[1]))
                       .getResult();
                 });
      Value rowSum =
          reduceRows(rewriter, loc, e, 0.0,
                     [](OpBuilder &b, Location l, Value acc, Value v) {
                       return arith::AddFOp::create(b, l, acc, v).getResult();
                     });
      scores =
          mapF32(rewriter, loc, sizes, ValueRange{e, rowSum}, {id2, row2},
                 [](OpBuilder &b, Location l, ValueRange a) {
                   return arith::DivFOp::create(b, l, a[0], a[1]).getResult();
                 });
    } else {
      scores = mapF32(
          rewriter, loc, sizes, logits, id2,
          [](OpBuilder &b, Location l, ValueRange a) {
            Value v = toF32(b, l, a[0]);
            Value e = math::ExpOp::create(b, l, arith::NegFOp::create(b, l, v));
            return arith::DivFOp::create(
                       b, l, f32Const(b, l, 1.0),
                       arith::AddFOp::create(b, l, e, f32Const(b, l, 1.0)))
                .getResult();
          });
    }
    // Selection keys.
    Value keys = scores;
    if (Value bias = adaptor.getBias())
      keys =
          mapF32(rewriter, loc, sizes, ValueRange{scores, bias}, {id2, col2},
                 [](OpBuilder &b, Location l, ValueRange a) {
                   return arith::AddFOp::create(b, l, a[0], toF32(b, l, a[1]))
                       .getResult();
                 });

    // Per-token selection.
    OpFoldResult tokens = sizes[0];
    SmallVector<OpFoldResult> outSizes = {tokens, rewriter.getIndexAttr(k)};
    Value weightsInit = tensor::EmptyOp::create(rewriter, loc, outSizes, f32);
    Value expertsInit = tensor::EmptyOp::create(rewriter, loc, outSizes, i32);
    auto forall = scf::ForallOp::create(
        rewriter, loc, ArrayRef<OpFoldResult>{tokens},
        ValueRange{weightsInit, expertsInit}, std::nullopt);
    {
      OpBuilder::InsertionGuard guard(rewriter);
      OpBuilder &b = rewriter;
      b.setInsertionPointToStart(forall.getBody());
      Value t = forall.getInductionVar(0);
      auto keyAt = [&](OpBuilder &nb, Location nl, Value e) -> Value {
        return tensor::ExtractOp::create(nb, nl, keys, ValueRange{t, e});
      };

      // Group-limited routing: group keys, then the kept groups as a mask.
      Value groupMask;
      if (groupLimited) {
        Value keysRow =
            tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{groups}, f32);
        auto groupLoop = scf::ForOp::create(
            b, loc, indexConst(b, loc, 0), indexConst(b, loc, groups),
            indexConst(b, loc, 1), ValueRange{keysRow},
            [&](OpBuilder &nb, Location nl, Value g, ValueRange args) {
              Value base = arith::MulIOp::create(nb, nl, g,
                                                 indexConst(nb, nl, perGroup));
              Value negInf =
                  f32Const(nb, nl, -std::numeric_limits<double>::infinity());
              auto members = scf::ForOp::create(
                  nb, nl, indexConst(nb, nl, 0), indexConst(nb, nl, perGroup),
                  indexConst(nb, nl, 1), ValueRange{negInf, negInf},
                  [&](OpBuilder &mb, Location ml, Value j, ValueRange acc) {
                    Value v =
                        keyAt(mb, ml, arith::AddIOp::create(mb, ml, base, j));
                    // Largest and second largest so far.
                    Value m1 = arith::MaximumFOp::create(mb, ml, acc[0], v);
                    Value m2 = arith::MaximumFOp::create(
                        mb, ml, acc[1],
                        arith::MinimumFOp::create(mb, ml, acc[0], v));
                    scf::YieldOp::create(mb, ml, ValueRange{m1, m2});
                  });
              Value score = members.getResult(0);
              if (top2)
                score = arith::AddFOp::create(nb, nl, members.getResult(0),
                                              members.getResult(1));
              Value updated = tensor::InsertOp::create(nb, nl, score, args[0],
                                                       ValueRange{g});
              scf::YieldOp::create(nb, nl, updated);
            });
        Value groupKeys = groupLoop.getResult(0);
        Value maskInit = arith::ConstantOp::create(
            b, loc,
            DenseElementsAttr::get(
                RankedTensorType::get({groups}, b.getI1Type()), false));
        auto pick = scf::ForOp::create(
            b, loc, indexConst(b, loc, 0), indexConst(b, loc, keep),
            indexConst(b, loc, 1),
            ValueRange{f32Const(b, loc, 0.0), indexConst(b, loc, -1), maskInit},
            [&](OpBuilder &nb, Location nl, Value, ValueRange args) {
              auto [key, idx] = selectNext(
                  nb, nl, groups, args[0], args[1],
                  [&](OpBuilder &mb, Location ml, Value g) -> Value {
                    return tensor::ExtractOp::create(mb, ml, groupKeys,
                                                     ValueRange{g});
                  },
                  nullptr);
              Value on =
                  arith::ConstantOp::create(nb, nl, nb.getBoolAttr(true));
              Value mask = tensor::InsertOp::create(nb, nl, on, args[2],
                                                    ValueRange{idx});
              scf::YieldOp::create(nb, nl, ValueRange{key, idx, mask});
            });
        groupMask = pick.getResult(2);
      }

      // k passes over the experts.
      Value wRow = tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{k}, f32);
      Value eRow = tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{k}, i32);
      auto topk = scf::ForOp::create(
          b, loc, indexConst(b, loc, 0), indexConst(b, loc, k),
          indexConst(b, loc, 1),
          ValueRange{f32Const(b, loc, 0.0), indexConst(b, loc, -1), wRow, eRow,
                     f32Const(b, loc, 0.0)},
          [&](OpBuilder &nb, Location nl, Value j, ValueRange args) {
            auto allowed = [&](OpBuilder &mb, Location ml, Value e) -> Value {
              Value g = arith::DivUIOp::create(mb, ml, e,
                                               indexConst(mb, ml, perGroup));
              return tensor::ExtractOp::create(mb, ml, groupMask,
                                               ValueRange{g});
            };
            auto [key, idx] = selectNext(
                nb, nl, numExperts, args[0], args[1], keyAt,
                groupMask
                    ? function_ref<Value(OpBuilder &, Location, Value)>(allowed)
                    : nullptr);
            Value score =
                tensor::ExtractOp::create(nb, nl, scores, ValueRange{t, idx});
            Value w =
                tensor::InsertOp::create(nb, nl, score, args[2], ValueRange{j});
            Value e = tensor::InsertOp::create(
                nb, nl,
                arith::IndexCastOp::create(nb, nl, nb.getI32Type(), idx),
                args[3], ValueRange{j});
            Value sum = arith::AddFOp::create(nb, nl, args[4], score);
            scf::YieldOp::create(nb, nl, ValueRange{key, idx, w, e, sum});
          });
      Value weightsRow = topk.getResult(2);
      Value expertsRow = topk.getResult(3);
      double scale = op.getRoutedScalingFactor().convertToDouble();
      if (op.getNormalize() || scale != 1.0) {
        Value factor = f32Const(b, loc, scale);
        if (op.getNormalize())
          factor = arith::DivFOp::create(b, loc, factor, topk.getResult(4));
        AffineMap id1 = b.getMultiDimIdentityMap(1);
        weightsRow = linalg::GenericOp::create(
                         b, loc, TypeRange{weightsRow.getType()}, ValueRange{},
                         ValueRange{weightsRow}, ArrayRef<AffineMap>{id1},
                         {utils::IteratorType::parallel},
                         [&](OpBuilder &nb, Location nl, ValueRange args) {
                           linalg::YieldOp::create(
                               nb, nl,
                               arith::MulFOp::create(nb, nl, args[0], factor)
                                   .getResult());
                         })
                         .getResult(0);
      }

      b.setInsertionPointToStart(forall.getTerminator().getBody());
      SmallVector<OpFoldResult> offs = {t, b.getIndexAttr(0)};
      SmallVector<OpFoldResult> rowSizes = {b.getIndexAttr(1),
                                            b.getIndexAttr(k)};
      SmallVector<OpFoldResult> strides(2, b.getIndexAttr(1));
      tensor::ParallelInsertSliceOp::create(b, loc, weightsRow,
                                            forall.getRegionIterArgs()[0], offs,
                                            rowSizes, strides);
      tensor::ParallelInsertSliceOp::create(b, loc, expertsRow,
                                            forall.getRegionIterArgs()[1], offs,
                                            rowSizes, strides);
    }

    SmallVector<Value> results = {forall.getResult(0), forall.getResult(1)};
    for (auto [r, type] : llvm::zip(results, op->getResultTypes()))
      if (r.getType() != type)
        r = tensor::CastOp::create(rewriter, loc, type, r);
    rewriter.replaceOp(op, results);
    return success();
  }
};

struct ConvertMoEToLinalgPass
    : moka::impl::ConvertMoEToLinalgPassBase<ConvertMoEToLinalgPass> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    ConversionTarget target(*ctx);
    target.addIllegalDialect<moe::MoEDialect>();
    target.addLegalDialect<arith::ArithDialect, linalg::LinalgDialect,
                           math::MathDialect, scf::SCFDialect,
                           tensor::TensorDialect>();
    RewritePatternSet patterns(ctx);
    populateMoEToLinalgConversionPatterns(patterns);
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void moka::populateMoEToLinalgConversionPatterns(RewritePatternSet &patterns) {
  patterns.add<RouteOpLowering>(patterns.getContext());
}
