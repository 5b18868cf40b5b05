//===- MoEToLinalg.cpp - Lowering of `moe` to `linalg` --------------------===//
//
// Rewrites `moe` operations as linalg, scf and tensor operations on tensors.
//
//===----------------------------------------------------------------------===//

#include "moka/Conversion/MoEToLinalg/MoEToLinalg.h"
#include "moka/Conversion/Passes.h"
#include "moka/Conversion/Utils/GPUKernelBuilder.h"
#include "moka/Dialect/KAN/IR/KANDialect.h"
#include "moka/Dialect/KAN/IR/KANOps.h"
#include "moka/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Transforms/DialectConversion.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cmath>
#include <functional>
#include <limits>
#include <tuple>

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
        // A total order on keys: descending, NaN after every number (so
        // that a NaN score is chosen last, never skipped), ties to the
        // lower index.
        auto isNaN = [&](Value x) {
          return arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::UNO, x, x);
        };
        auto ranksBefore = [&](Value x, Value y) {
          Value notNaN =
              arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::ORD, x, x);
          Value greater =
              arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OGT, x, y);
          return arith::AndIOp::create(
              nb, nl, notNaN, arith::OrIOp::create(nb, nl, isNaN(y), greater));
        };
        Value sameKey = arith::OrIOp::create(
            nb, nl,
            arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OEQ, key,
                                  prevKey),
            arith::AndIOp::create(nb, nl, isNaN(key), isNaN(prevKey)));
        Value first = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::slt,
                                            prevIdx, indexConst(nb, nl, 0));
        Value below = ranksBefore(prevKey, key);
        Value tieAfter = arith::AndIOp::create(
            nb, nl, sameKey,
            arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::sgt, i,
                                  prevIdx));
        Value eligible = arith::OrIOp::create(
            nb, nl, first, arith::OrIOp::create(nb, nl, below, tieAfter));
        if (allowed)
          eligible =
              arith::AndIOp::create(nb, nl, eligible, allowed(nb, nl, i));
        // Strictly better, or the first eligible one.
        Value none = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::slt,
                                           args[1], indexConst(nb, nl, 0));
        Value better = ranksBefore(key, args[0]);
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

/// Value of the i32 tensor element at `indices`, as an index.
Value extractIndex(OpBuilder &b, Location loc, Value t, ValueRange indices) {
  Value v = tensor::ExtractOp::create(b, loc, t, indices);
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
}

/// Run-time checks that dimension `i` of `x` equals dimension `j` of `y`,
/// for each (x, i, y, j) where one of the two is dynamic (the verifiers
/// compare static ones): a mismatch would read out of bounds.
void checkSameDims(OpBuilder &b, Location loc,
                   ArrayRef<std::tuple<Value, int64_t, Value, int64_t>> pairs,
                   StringRef message) {
  for (auto [x, i, y, j] : pairs) {
    if (!x || !y)
      continue;
    auto xt = cast<RankedTensorType>(x.getType());
    auto yt = cast<RankedTensorType>(y.getType());
    if (!xt.isDynamicDim(i) && !yt.isDynamicDim(j))
      continue;
    Value same = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                       tensor::DimOp::create(b, loc, x, i),
                                       tensor::DimOp::create(b, loc, y, j));
    cf::AssertOp::create(b, loc, same, message);
  }
}

Value i32Const(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(v));
}

/// A run-time check that `holds(ivs)` is true at every point of the loop
/// nest over [0, ubs): one scf.for nest folding the conditions, one
/// cf.assert after it.
void checkAll(OpBuilder &b, Location loc, ValueRange ubs,
              function_ref<Value(OpBuilder &, Location, ValueRange)> holds,
              StringRef message) {
  Value zero = indexConst(b, loc, 0), one = indexConst(b, loc, 1);
  SmallVector<Value> lbs(ubs.size(), zero), steps(ubs.size(), one);
  Value init = arith::ConstantOp::create(b, loc, b.getBoolAttr(true));
  scf::LoopNest nest = scf::buildLoopNest(
      b, loc, lbs, ubs, steps, ValueRange{init},
      [&](OpBuilder &nb, Location nl, ValueRange ivs, ValueRange ok) {
        return scf::ValueVector{
            arith::AndIOp::create(nb, nl, ok[0], holds(nb, nl, ivs))};
      });
  cf::AssertOp::create(b, loc, nest.results.front(), message);
}

/// Whether `v` is a result of moe.dispatch, whose rows, offsets and slots
/// are in range by construction.
bool fromDispatch(Value v) { return v && v.getDefiningOp<moe::DispatchOp>(); }

/// Checks that a program's own rows and offsets are in range: offsets
/// rising from 0 to at most the number of rows n, and each row of the
/// segments a token of x (a bad one would be read out of bounds).
void checkRowsAndOffsets(OpBuilder &b, Location loc, Value x, Value rows,
                         Value offsets) {
  auto ult = [](OpBuilder &nb, Location nl, Value lhs, Value rhs) {
    return arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ult, lhs, rhs);
  };
  Value numExperts = arith::SubIOp::create(
      b, loc, tensor::DimOp::create(b, loc, offsets, 0), indexConst(b, loc, 1));
  Value n = tensor::DimOp::create(b, loc, rows, 0);
  Value first = tensor::ExtractOp::create(b, loc, offsets,
                                          ValueRange{indexConst(b, loc, 0)});
  Value total = extractIndex(b, loc, offsets, {numExperts});
  cf::AssertOp::create(
      b, loc,
      arith::AndIOp::create(
          b, loc,
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, first,
                                i32Const(b, loc, 0)),
          arith::CmpIOp::create(
              b, loc, arith::CmpIPredicate::sle,
              tensor::ExtractOp::create(b, loc, offsets,
                                        ValueRange{numExperts}),
              arith::IndexCastOp::create(b, loc, b.getI32Type(), n))),
      "moe.experts: the offsets must start at 0 and end at most at the "
      "number of rows");
  checkAll(
      b, loc, {numExperts},
      [&](OpBuilder &nb, Location nl, ValueRange e) {
        Value next = arith::AddIOp::create(nb, nl, e[0], indexConst(nb, nl, 1));
        return arith::CmpIOp::create(
            nb, nl, arith::CmpIPredicate::sle,
            tensor::ExtractOp::create(nb, nl, offsets, e),
            tensor::ExtractOp::create(nb, nl, offsets, ValueRange{next}));
      },
      "moe.experts: the offsets must not decrease");
  Value tokens = tensor::DimOp::create(b, loc, x, 0);
  checkAll(
      b, loc, {arith::MinUIOp::create(b, loc, total, n).getResult()},
      [&](OpBuilder &nb, Location nl, ValueRange i) {
        // Unsigned: a negative row is out of range too.
        return ult(nb, nl, extractIndex(nb, nl, rows, i), tokens);
      },
      "moe.experts: a row of the segments is not a token of the input");
}

Value filledI32(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
                int64_t v) {
  Value empty = tensor::EmptyOp::create(b, loc, sizes, b.getI32Type());
  return linalg::FillOp::create(b, loc, i32Const(b, loc, v), empty)
      .getResult(0);
}

/// Counting sort of the (token, slot) assignments by expert, with optional
/// capacity dropping: two sequential passes and a prefix sum, O(T k + E).
struct DispatchOpLowering : OpConversionPattern<moe::DispatchOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(moe::DispatchOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    OpBuilder &b = rewriter;
    Value experts = adaptor.getExperts();
    int64_t numExperts = op.getNumExperts();
    Value tokens = tensor::DimOp::create(b, loc, experts, 0);
    Value k = tensor::DimOp::create(b, loc, experts, 1);
    Value zero = indexConst(b, loc, 0), one = indexConst(b, loc, 1);
    Value numE = indexConst(b, loc, numExperts);

    // Capacity per expert: ceil(capacity_factor * T * k / E).
    Value capacity;
    if (std::optional<APFloat> cf = op.getCapacityFactor()) {
      Type f64 = b.getF64Type();
      Value tk = arith::MulIOp::create(b, loc, tokens, k);
      Value tkF = arith::UIToFPOp::create(
          b, loc, f64, arith::IndexCastOp::create(b, loc, b.getI64Type(), tk));
      Value scaled = arith::MulFOp::create(
          b, loc, tkF,
          arith::ConstantOp::create(b, loc,
                                    b.getF64FloatAttr(cf->convertToDouble())));
      Value perExpert = arith::DivFOp::create(
          b, loc, scaled,
          arith::ConstantOp::create(b, loc,
                                    b.getF64FloatAttr(double(numExperts))));
      Value ceil = math::CeilOp::create(b, loc, perExpert);
      capacity = arith::IndexCastOp::create(
          b, loc, b.getIndexType(),
          arith::FPToSIOp::create(b, loc, b.getI64Type(), ceil));
    }

    // Pass 1: per-expert counts and each assignment's place in its expert
    // (-1 when dropped).
    SmallVector<OpFoldResult> slotSizes = {OpFoldResult(tokens),
                                           OpFoldResult(k)};
    Value counts = filledI32(b, loc, {b.getIndexAttr(numExperts)}, 0);
    Value places = filledI32(b, loc, slotSizes, -1);
    auto pass1 = scf::ForOp::create(
        b, loc, zero, tokens, one, ValueRange{counts, places},
        [&](OpBuilder &tb, Location tl, Value t, ValueRange targs) {
          auto inner = scf::ForOp::create(
              tb, tl, zero, k, one, targs,
              [&](OpBuilder &sb, Location sl, Value s, ValueRange args) {
                Value e = extractIndex(sb, sl, experts, {t, s});
                Value inRange = arith::CmpIOp::create(
                    sb, sl, arith::CmpIPredicate::ult, e, numE);
                cf::AssertOp::create(sb, sl, inRange,
                                     "moe.dispatch: expert index out of "
                                     "range [0, num_experts)");
                Value c =
                    tensor::ExtractOp::create(sb, sl, args[0], ValueRange{e});
                Value keep =
                    arith::ConstantOp::create(sb, sl, sb.getBoolAttr(true));
                if (capacity)
                  keep = arith::CmpIOp::create(
                      sb, sl, arith::CmpIPredicate::ult,
                      arith::IndexCastOp::create(sb, sl, sb.getIndexType(), c),
                      capacity);
                Value next = arith::AddIOp::create(
                    sb, sl, c,
                    arith::ExtUIOp::create(sb, sl, sb.getI32Type(), keep));
                Value newCounts = tensor::InsertOp::create(
                    sb, sl, next, args[0], ValueRange{e});
                Value place = arith::SelectOp::create(sb, sl, keep, c,
                                                      i32Const(sb, sl, -1));
                Value newPlaces = tensor::InsertOp::create(
                    sb, sl, place, args[1], ValueRange{t, s});
                scf::YieldOp::create(sb, sl, ValueRange{newCounts, newPlaces});
              });
          scf::YieldOp::create(tb, tl, inner.getResults());
        });
    counts = pass1.getResult(0);
    places = pass1.getResult(1);

    // Offsets: exclusive prefix sum of the counts.
    Value offsetsInit = filledI32(b, loc, {b.getIndexAttr(numExperts + 1)}, 0);
    auto prefix = scf::ForOp::create(
        b, loc, zero, numE, one, ValueRange{offsetsInit, i32Const(b, loc, 0)},
        [&](OpBuilder &nb, Location nl, Value e, ValueRange args) {
          Value c = tensor::ExtractOp::create(nb, nl, counts, ValueRange{e});
          Value sum = arith::AddIOp::create(nb, nl, args[1], c);
          Value e1 = arith::AddIOp::create(nb, nl, e, one);
          Value off =
              tensor::InsertOp::create(nb, nl, sum, args[0], ValueRange{e1});
          scf::YieldOp::create(nb, nl, ValueRange{off, sum});
        });
    Value offsets = prefix.getResult(0);

    // Pass 2: rows and slots.
    Value tk = arith::MulIOp::create(b, loc, tokens, k);
    Value rowsInit = filledI32(b, loc, {OpFoldResult(tk)}, -1);
    auto pass2 = scf::ForOp::create(
        b, loc, zero, tokens, one, ValueRange{rowsInit, places},
        [&](OpBuilder &tb, Location tl, Value t, ValueRange targs) {
          auto inner = scf::ForOp::create(
              tb, tl, zero, k, one, targs,
              [&](OpBuilder &sb, Location sl, Value s, ValueRange args) {
                Value e = extractIndex(sb, sl, experts, {t, s});
                Value place = tensor::ExtractOp::create(sb, sl, args[1],
                                                        ValueRange{t, s});
                Value kept =
                    arith::CmpIOp::create(sb, sl, arith::CmpIPredicate::sge,
                                          place, i32Const(sb, sl, 0));
                Value base =
                    tensor::ExtractOp::create(sb, sl, offsets, ValueRange{e});
                Value row = arith::AddIOp::create(sb, sl, base, place);
                Value slot = arith::SelectOp::create(sb, sl, kept, row,
                                                     i32Const(sb, sl, -1));
                Value newSlots = tensor::InsertOp::create(sb, sl, slot, args[1],
                                                          ValueRange{t, s});
                auto ifOp = scf::IfOp::create(
                    sb, sl, TypeRange{args[0].getType()}, kept,
                    /*withElseRegion=*/true);
                {
                  OpBuilder::InsertionGuard g(sb);
                  sb.setInsertionPointToStart(ifOp.thenBlock());
                  Value token =
                      arith::IndexCastOp::create(sb, sl, sb.getI32Type(), t);
                  Value r = arith::IndexCastOp::create(sb, sl,
                                                       sb.getIndexType(), row);
                  Value newRows = tensor::InsertOp::create(
                      sb, sl, token, args[0], ValueRange{r});
                  scf::YieldOp::create(sb, sl, newRows);
                  sb.setInsertionPointToStart(ifOp.elseBlock());
                  scf::YieldOp::create(sb, sl, args[0]);
                }
                scf::YieldOp::create(sb, sl,
                                     ValueRange{ifOp.getResult(0), newSlots});
              });
          scf::YieldOp::create(tb, tl, inner.getResults());
        });

    SmallVector<Value> results = {pass2.getResult(0), offsets,
                                  pass2.getResult(1)};
    for (auto [r, type] : llvm::zip(results, op->getResultTypes()))
      if (r.getType() != type)
        r = tensor::CastOp::create(b, loc, type, r);
    rewriter.replaceOp(op, results);
    return success();
  }
};

/// `w[E, a, b]` transposed to `[E, b, a]`, so that a tile of output
/// channels is contiguous.
Value transposeStack(OpBuilder &b, Location loc, Value w) {
  auto type = cast<RankedTensorType>(w.getType());
  SmallVector<int64_t> perm = {0, 2, 1};
  SmallVector<OpFoldResult> sizes;
  for (int64_t p : perm)
    sizes.push_back(tensor::getMixedSize(b, loc, w, p));
  Value init = tensor::EmptyOp::create(b, loc, sizes, type.getElementType());
  return linalg::TransposeOp::create(b, loc, w, init, perm).getResult()[0];
}

/// acc[i, o] += lhs[i, c] * w[c, o] in f32.
Value matmulF32(OpBuilder &b, Location loc, Value lhs, Value w, Value acc) {
  MLIRContext *ctx = b.getContext();
  auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  auto fm = arith::FastMathFlags::contract;
  return linalg::GenericOp::create(
             b, loc, TypeRange{acc.getType()}, ValueRange{lhs, w},
             ValueRange{acc},
             ArrayRef<AffineMap>{AffineMap::get(3, 0, {d(0), d(2)}, ctx),
                                 AffineMap::get(3, 0, {d(2), d(1)}, ctx),
                                 AffineMap::get(3, 0, {d(0), d(1)}, ctx)},
             {utils::IteratorType::parallel, utils::IteratorType::parallel,
              utils::IteratorType::reduction},
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value p = arith::MulFOp::create(nb, nl, toF32(nb, nl, args[0]),
                                               toF32(nb, nl, args[1]), fm);
               linalg::YieldOp::create(
                   nb, nl,
                   arith::AddFOp::create(nb, nl, args[2], p, fm).getResult());
             })
      .getResult(0);
}

/// matmulF32 with expert `e` of a transposed weight stack `[E, c, o]`.
Value expertMatmul(OpBuilder &b, Location loc, Value lhs, Value wStack, Value e,
                   Value acc) {
  auto stackType = cast<RankedTensorType>(wStack.getType());
  SmallVector<OpFoldResult> offs = {e, b.getIndexAttr(0), b.getIndexAttr(0)};
  SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1),
                                     tensor::getMixedSize(b, loc, wStack, 1),
                                     tensor::getMixedSize(b, loc, wStack, 2)};
  SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
  auto sliceType =
      RankedTensorType::get({stackType.getDimSize(1), stackType.getDimSize(2)},
                            stackType.getElementType());
  Value w = tensor::ExtractSliceOp::create(b, loc, sliceType, wStack, offs,
                                           sizes, strides);
  return matmulF32(b, loc, lhs, w, acc);
}

/// `w[a, b]` transposed to `[b, a]`.
Value transpose2d(OpBuilder &b, Location loc, Value w) {
  auto type = cast<RankedTensorType>(w.getType());
  SmallVector<OpFoldResult> sizes = {tensor::getMixedSize(b, loc, w, 1),
                                     tensor::getMixedSize(b, loc, w, 0)};
  Value init = tensor::EmptyOp::create(b, loc, sizes, type.getElementType());
  return linalg::TransposeOp::create(b, loc, w, init, ArrayRef<int64_t>{1, 0})
      .getResult()[0];
}

/// The expert function on f32 scalars: silu(g) * u, or gelu(g) without u.
Value activateScalar(OpBuilder &b, Location loc, Value g, Value u) {
  if (u) {
    Value neg = arith::NegFOp::create(b, loc, g);
    Value den = arith::AddFOp::create(b, loc, math::ExpOp::create(b, loc, neg),
                                      f32Const(b, loc, 1.0));
    Value silu = arith::DivFOp::create(b, loc, g, den);
    return arith::MulFOp::create(b, loc, silu, u);
  }
  // Exact GELU: x/2 (1 + erf(x / sqrt 2)).
  Value erf = math::ErfOp::create(
      b, loc, arith::MulFOp::create(b, loc, g, f32Const(b, loc, M_SQRT1_2)));
  Value half = arith::MulFOp::create(b, loc, g, f32Const(b, loc, 0.5));
  return arith::MulFOp::create(
      b, loc, half, arith::AddFOp::create(b, loc, erf, f32Const(b, loc, 1.0)));
}

/// The expert function on f32 pre-activations: silu(g) * u or gelu(g).
Value activate(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
               Value g, Value u) {
  MLIRContext *ctx = b.getContext();
  AffineMap id = AffineMap::get(
      2, 0, {getAffineDimExpr(0, ctx), getAffineDimExpr(1, ctx)}, ctx);
  if (u)
    return mapF32(b, loc, sizes, ValueRange{g, u}, {id, id},
                  [](OpBuilder &nb, Location nl, ValueRange a) {
                    return activateScalar(nb, nl, a[0], a[1]);
                  });
  return mapF32(b, loc, sizes, ValueRange{g}, {id},
                [](OpBuilder &nb, Location nl, ValueRange a) {
                  return activateScalar(nb, nl, a[0], Value());
                });
}

Value zeroF32(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes) {
  Value empty = tensor::EmptyOp::create(b, loc, sizes, b.getF32Type());
  return linalg::FillOp::create(b, loc, f32Const(b, loc, 0.0), empty)
      .getResult(0);
}

/// Lanes of the split reduction in the dot form.
constexpr int64_t kDotLanes = 16;

/// acc[i, o] = sum_c lhs[i, c] * w[o, c] with `w` expert `e` of a stack
/// `[E, o, c]` read in place (rows contiguous along c): 16-lane partial sums
/// `[o, i, 16]` over blocks of c, then one reduction over the lanes. The
/// loops run (o, i, c): each weight row is read once and reused by every
/// row of the segment. `c` must be a multiple of 16.
Value dotExpertMatmul(OpBuilder &b, Location loc, Value lhs, Value wStack,
                      Value e) {
  MLIRContext *ctx = b.getContext();
  auto stackType = cast<RankedTensorType>(wStack.getType());
  int64_t o = stackType.getDimSize(1), c = stackType.getDimSize(2);
  Type elt = stackType.getElementType();
  Value w = tensor::ExtractSliceOp::create(
      b, loc, RankedTensorType::get({o, c}, elt), wStack,
      ArrayRef<OpFoldResult>{e, b.getIndexAttr(0), b.getIndexAttr(0)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(o),
                             b.getIndexAttr(c)},
      SmallVector<OpFoldResult>(3, b.getIndexAttr(1)));
  int64_t blocks = c / kDotLanes;
  Value w3 = tensor::ExpandShapeOp::create(
      b, loc, RankedTensorType::get({o, blocks, kDotLanes}, elt), w,
      SmallVector<ReassociationIndices>{{0}, {1, 2}});
  auto lhsType = cast<RankedTensorType>(lhs.getType());
  OpFoldResult n = tensor::getMixedSize(b, loc, lhs, 0);
  Value lhs3 = tensor::ExpandShapeOp::create(
      b, loc,
      RankedTensorType::get({lhsType.getDimSize(0), blocks, kDotLanes},
                            lhsType.getElementType()),
      lhs, SmallVector<ReassociationIndices>{{0}, {1, 2}},
      ArrayRef<OpFoldResult>{n, b.getIndexAttr(blocks),
                             b.getIndexAttr(kDotLanes)});
  auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  auto fm = arith::FastMathFlags::contract;
  // Loops (o, i, block, lane).
  Value partialInit =
      zeroF32(b, loc, {b.getIndexAttr(o), n, b.getIndexAttr(kDotLanes)});
  Value partial =
      linalg::GenericOp::create(
          b, loc, TypeRange{partialInit.getType()}, ValueRange{lhs3, w3},
          ValueRange{partialInit},
          ArrayRef<AffineMap>{AffineMap::get(4, 0, {d(1), d(2), d(3)}, ctx),
                              AffineMap::get(4, 0, {d(0), d(2), d(3)}, ctx),
                              AffineMap::get(4, 0, {d(0), d(1), d(3)}, ctx)},
          {utils::IteratorType::parallel, utils::IteratorType::parallel,
           utils::IteratorType::reduction, utils::IteratorType::parallel},
          [&](OpBuilder &nb, Location nl, ValueRange args) {
            Value p = arith::MulFOp::create(nb, nl, toF32(nb, nl, args[0]),
                                            toF32(nb, nl, args[1]), fm);
            linalg::YieldOp::create(
                nb, nl,
                arith::AddFOp::create(nb, nl, args[2], p, fm).getResult());
          })
          .getResult(0);
  // Loops (i, o, lane).
  Value outInit = zeroF32(b, loc, {n, b.getIndexAttr(o)});
  return linalg::GenericOp::create(
             b, loc, TypeRange{outInit.getType()}, ValueRange{partial},
             ValueRange{outInit},
             ArrayRef<AffineMap>{AffineMap::get(3, 0, {d(1), d(0), d(2)}, ctx),
                                 AffineMap::get(3, 0, {d(0), d(1)}, ctx)},
             {utils::IteratorType::parallel, utils::IteratorType::parallel,
              utils::IteratorType::reduction},
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               linalg::YieldOp::create(
                   nb, nl,
                   arith::AddFOp::create(nb, nl, args[1], args[0]).getResult());
             })
      .getResult(0);
}

/// Small batches of SwiGLU and GELU experts on CPUs: explicit vector code
/// that reads the weight stacks `[E, o, c]` in place. A product runs as an
/// scf.forall over tiles of its output columns (the rows of the weights);
/// each task walks every expert's segment, so the threads split the weights
/// of whichever experts are selected evenly. Within a task, a register
/// block of 8 weight rows is dotted with two segment rows at a time (16
/// accumulators of 16 lanes, with the 8 weight vectors and 2 row vectors of
/// a step: sized for AVX-512's 32 registers): the 8 weight rows come from
/// memory for the first pair and from the caches for the others, so each
/// selected expert's weights are read from memory once.
struct SmallBatchKernel {
  static constexpr int64_t kBlock = 8;
  static constexpr int64_t kRowsPerStep = 2;

  OpBuilder &b;
  Location loc;
  VectorType vL = VectorType::get({kDotLanes}, b.getF32Type());

  Value idx(int64_t v) { return indexConst(b, loc, v); }

  /// `t[indices...]` as a vector<16xf32>, along the innermost dimension.
  Value readF32(Value t, ValueRange indices) {
    Type elt = cast<RankedTensorType>(t.getType()).getElementType();
    Value pad = arith::ConstantOp::create(b, loc, b.getZeroAttr(elt));
    Value v = vector::TransferReadOp::create(
        b, loc, VectorType::get({kDotLanes}, elt), t, indices, pad,
        ArrayRef<bool>{true});
    if (!elt.isF32())
      v = arith::ExtFOp::create(b, loc, vL, v);
    return v;
  }

  /// Row `row` of expert `e` of a weight stack.
  struct WeightRow {
    Value stack, e, row;
  };

  /// For each of `lhs.size()` rows, the dot products (a vector<weights.size()
  /// x f32>) of the row with the weight rows, over `depth` channels:
  /// `lhs[r](c)` reads 16 channels from `c`.
  SmallVector<Value> dots(int64_t depth,
                          ArrayRef<std::function<Value(Value)>> lhs,
                          ArrayRef<WeightRow> weights) {
    int64_t rows = lhs.size(), cols = weights.size();
    Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(vL));
    auto loop = scf::ForOp::create(
        b, loc, idx(0), idx(depth), idx(kDotLanes),
        SmallVector<Value>(rows * cols, zero),
        [&](OpBuilder &, Location, Value c, ValueRange acc) {
          SmallVector<Value> w, x, next;
          for (const WeightRow &wr : weights)
            w.push_back(readF32(wr.stack, {wr.e, wr.row, c}));
          for (int64_t r = 0; r < rows; ++r)
            x.push_back(lhs[r](c));
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t j = 0; j < cols; ++j)
              next.push_back(
                  math::FmaOp::create(b, loc, x[r], w[j], acc[r * cols + j]));
          scf::YieldOp::create(b, loc, next);
        });
    SmallVector<Value> sums;
    auto reassoc =
        arith::FastMathFlags::reassoc | arith::FastMathFlags::contract;
    for (int64_t r = 0; r < rows; ++r) {
      SmallVector<Value> row;
      for (int64_t j = 0; j < cols; ++j)
        row.push_back(
            vector::ReductionOp::create(b, loc, vector::CombiningKind::ADD,
                                        loop.getResult(r * cols + j), reassoc));
      sums.push_back(vector::FromElementsOp::create(
          b, loc, VectorType::get({cols}, b.getF32Type()), row));
    }
    return sums;
  }

  /// out[i, o] (`out` is `[n, outCols]` f32) for every segment row i of
  /// every expert, as an scf.forall over tiles of `tile` output columns.
  /// `width` columns (a divisor of kBlock) are written per register block;
  /// `block(e, o, rows)` returns, for each row index in `rows`, the vector
  /// of `width` values of columns [o, o + width) of expert `e`.
  Value product(
      Value out, int64_t outCols, int64_t tile, int64_t width, Value offsets,
      int64_t numExperts,
      function_ref<SmallVector<Value>(Value, Value, ArrayRef<Value>)> block) {
    OpFoldResult n = tensor::getMixedSize(b, loc, out, 0);
    auto forall = scf::ForallOp::create(
        b, loc, ArrayRef<OpFoldResult>{b.getIndexAttr(outCols / tile)},
        ValueRange{out}, std::nullopt);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(forall.getBody());
    Value col0 =
        arith::MulIOp::create(b, loc, forall.getInductionVar(0), idx(tile));
    auto tileType =
        RankedTensorType::get({ShapedType::kDynamic, tile}, b.getF32Type());
    Value slice = tensor::ExtractSliceOp::create(
        b, loc, tileType, forall.getRegionIterArgs()[0],
        ArrayRef<OpFoldResult>{b.getIndexAttr(0), col0},
        ArrayRef<OpFoldResult>{n, b.getIndexAttr(tile)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
    auto experts = scf::ForOp::create(
        b, loc, idx(0), idx(numExperts), idx(1), ValueRange{slice},
        [&](OpBuilder &, Location, Value e, ValueRange eArgs) {
          Value lo = extractIndex(b, loc, offsets, {e});
          Value hi = extractIndex(b, loc, offsets,
                                  {arith::AddIOp::create(b, loc, e, idx(1))});
          // Rows in pairs, then the odd last row.
          Value count = arith::SubIOp::create(b, loc, hi, lo);
          Value pairsEnd = arith::AddIOp::create(
              b, loc, lo,
              arith::MulIOp::create(
                  b, loc,
                  arith::DivUIOp::create(b, loc, count, idx(kRowsPerStep)),
                  idx(kRowsPerStep)));
          auto blocks = scf::ForOp::create(
              b, loc, idx(0), idx(tile), idx(width), eArgs,
              [&](OpBuilder &, Location, Value local, ValueRange bArgs) {
                Value o = arith::AddIOp::create(b, loc, col0, local);
                auto rowLoop = [&](Value from, Value to, int64_t step,
                                   Value acc) {
                  return scf::ForOp::create(
                             b, loc, from, to, idx(step), ValueRange{acc},
                             [&](OpBuilder &, Location, Value i,
                                 ValueRange rArgs) {
                               SmallVector<Value> rows;
                               for (int64_t r = 0; r < step; ++r)
                                 rows.push_back(
                                     arith::AddIOp::create(b, loc, i, idx(r)));
                               SmallVector<Value> values = block(e, o, rows);
                               Value t = rArgs[0];
                               for (int64_t r = 0; r < step; ++r)
                                 t = vector::TransferWriteOp::create(
                                         b, loc, values[r], t,
                                         ValueRange{rows[r], local},
                                         ArrayRef<bool>{true})
                                         .getResult();
                               scf::YieldOp::create(b, loc, t);
                             })
                      .getResult(0);
                };
                Value acc = rowLoop(lo, pairsEnd, kRowsPerStep, bArgs[0]);
                acc = rowLoop(pairsEnd, hi, 1, acc);
                scf::YieldOp::create(b, loc, acc);
              });
          scf::YieldOp::create(b, loc, blocks.getResult(0));
        });
    b.setInsertionPointToStart(forall.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(
        b, loc, experts.getResult(0), forall.getRegionIterArgs()[0],
        ArrayRef<OpFoldResult>{b.getIndexAttr(0), col0},
        ArrayRef<OpFoldResult>{n, b.getIndexAttr(tile)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
    return forall.getResult(0);
  }

  /// Tasks a product should have, when its columns allow, so that many
  /// cores share it.
  static constexpr int64_t kMinTasks = 16;

  /// The largest of 64, 32, 16 dividing `cols` (a multiple of 16) that
  /// leaves kMinTasks tiles; 16 when none does.
  static int64_t tileFor(int64_t cols) {
    for (int64_t t : {64, 32})
      if (cols % t == 0 && cols / t >= kMinTasks)
        return t;
    return 16;
  }

  /// The expert outputs `[n, d]` in dispatch order: row i of the segment of
  /// expert e (rows [offsets[e], offsets[e + 1])) is token `rows[i]` of `x`
  /// (token i without `rows`) through expert e.
  Value build(moe::ExpertKind kind, Value x, Value rows, Value offsets,
              Value w1, Value w3, Value w2) {
    auto w1Type = cast<RankedTensorType>(w1.getType());
    int64_t numExperts = w1Type.getDimSize(0);
    int64_t f = w1Type.getDimSize(1), d = w1Type.getDimSize(2);
    bool swiglu = kind == moe::ExpertKind::swiglu;
    OpFoldResult n = tensor::getMixedSize(b, loc, rows ? rows : x, 0);

    // The hidden rows: silu(x W1^T) * (x W3^T), or gelu(x W1^T).
    int64_t width = swiglu ? kBlock / 2 : kBlock;
    Value hidden = tensor::EmptyOp::create(
        b, loc, ArrayRef<OpFoldResult>{n, b.getIndexAttr(f)}, b.getF32Type());
    hidden = product(
        hidden, f, tileFor(f), width, offsets, numExperts,
        [&](Value e, Value o, ArrayRef<Value> rowIdx) {
          SmallVector<std::function<Value(Value)>> lhs;
          for (Value i : rowIdx) {
            Value token = rows ? extractIndex(b, loc, rows, {i}) : i;
            lhs.push_back([this, x, token](Value c) {
              return readF32(x, {token, c});
            });
          }
          SmallVector<WeightRow> weights;
          for (int64_t j = 0; j < kBlock; ++j)
            weights.push_back(
                {swiglu && j >= width ? w3 : w1, e,
                 arith::AddIOp::create(b, loc, o, idx(j % width))});
          SmallVector<Value> sums = dots(d, lhs, weights);
          SmallVector<Value> values;
          VectorType vW = VectorType::get({width}, b.getF32Type());
          Value one =
              vector::BroadcastOp::create(b, loc, vW, f32Const(b, loc, 1.0));
          for (Value s : sums) {
            if (swiglu) {
              Value g = vector::ExtractStridedSliceOp::create(
                  b, loc, s, ArrayRef<int64_t>{0}, ArrayRef<int64_t>{width},
                  ArrayRef<int64_t>{1});
              Value u = vector::ExtractStridedSliceOp::create(
                  b, loc, s, ArrayRef<int64_t>{width}, ArrayRef<int64_t>{width},
                  ArrayRef<int64_t>{1});
              Value den = arith::AddFOp::create(
                  b, loc,
                  math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, g)),
                  one);
              values.push_back(arith::MulFOp::create(
                  b, loc, arith::DivFOp::create(b, loc, g, den), u));
            } else {
              // Exact GELU: x/2 (1 + erf(x / sqrt 2)).
              Value erf = math::ErfOp::create(
                  b, loc,
                  arith::MulFOp::create(
                      b, loc, s,
                      vector::BroadcastOp::create(
                          b, loc, vW, f32Const(b, loc, M_SQRT1_2))));
              Value half =
                  arith::MulFOp::create(b, loc, s,
                                        vector::BroadcastOp::create(
                                            b, loc, vW, f32Const(b, loc, 0.5)));
              values.push_back(arith::MulFOp::create(
                  b, loc, half, arith::AddFOp::create(b, loc, erf, one)));
            }
          }
          return values;
        });

    // The down projection: y = hidden W2^T (zero past the last segment).
    Value y = zeroF32(b, loc, {n, b.getIndexAttr(d)});
    return product(y, d, tileFor(d), kBlock, offsets, numExperts,
                   [&](Value e, Value o, ArrayRef<Value> rowIdx) {
                     SmallVector<std::function<Value(Value)>> lhs;
                     for (Value i : rowIdx)
                       lhs.push_back([this, hidden, i](Value c) {
                         return readF32(hidden, {i, c});
                       });
                     SmallVector<WeightRow> weights;
                     for (int64_t j = 0; j < kBlock; ++j)
                       weights.push_back(
                           {w2, e, arith::AddIOp::create(b, loc, o, idx(j))});
                     return dots(f, lhs, weights);
                   });
  }
};

/// moe.experts as grouped matrix products for GPUs, in two kernels (gate
/// and up with the activation, then down), each an `scf.forall` over
/// blocks (row tile, column tile, expert) mapped to `#gpu.block` ids whose
/// body stages operand tiles in workgroup memory:
///   - a block takes 64 rows of its expert's segment (blocks past the end
///     of the segment do nothing) and 64 output columns;
///   - per step of `tk` along the contraction, 256 threads copy the
///     segment rows' tile (gathered through `rows`) and the weights' tile
///     into workgroup memory, transposed, with consecutive threads reading
///     consecutive elements of a row, so global reads are coalesced and
///     each is made once per block;
///   - each thread then accumulates a 4 x 4 tile of outputs (rows and
///     columns 16 apart, so a warp reads consecutive words) from the
///     staged tiles; the accumulators live in workgroup memory between
///     steps, since the thread loops of one step are separate `scf.forall`s
///     (upstream's thread mapping puts a barrier after each);
///   - the last loop applies the epilogue (the activation) and writes.
/// The thread loops are `#gpu.thread<linear_dim_0>` foralls, so the same IR
/// also runs on a CPU one thread loop after another; moka-map-forall-to-gpu
/// turns the block loops into gpu.launch. Rows past the last segment are
/// zero. Any d and f (bounds checked per element), any element type of x and
/// the weights (converted to f32 as they are staged).
struct GPUExpertKernel {
  static constexpr int64_t kTile = GPUKernelBuilder::kTile;
  /// Steps along the contraction: 16 with two weight operands (gate and up:
  /// 45 248 bytes of workgroup memory), else 32 (33 024 bytes); both under
  /// the 48 KiB a block may have statically.
  static constexpr int64_t kStepPair = 16, kStepSingle = 32;

  OpBuilder &b;
  Location loc;
  GPUKernelBuilder k;

  GPUExpertKernel(OpBuilder &b, Location loc, bool workgroupMemory)
      : b(b), loc(loc), k{b, loc, workgroupMemory} {}

  /// out[lo_e + r, c] = epilogue(sum_i lhs[row(r), i] * wa[e, c, i], the
  /// same with wb) for r in expert e's segment and c < cols, where row(r)
  /// is rows[lo_e + r] with `rows`, else lo_e + r.
  void
  product(Value lhs, Value rows, Value offsets, Value numExperts, Value numRows,
          Value wa, Value wb, Value depth, Value cols, Value out,
          function_ref<Value(OpBuilder &, Location, Value, Value)> epilogue) {
    int64_t tk = wb ? kStepPair : kStepSingle;
    OpBuilder::InsertionGuard guard(b);
    // Row tiles on x (up to 2^31 - 1 blocks; y and z stop at 65535).
    SmallVector<Value> ids =
        k.blocks({k.tiles(numRows, kTile), k.tiles(cols, kTile), numExperts});
    Value r0 = k.mul(ids[0], k.index(kTile));
    Value c0 = k.mul(ids[1], k.index(kTile));
    Value e = ids[2];
    Value lo = k.loadIndex(offsets, {e});
    Value count = arith::SubIOp::create(
        b, loc, k.loadIndex(offsets, {k.add(e, k.index(1))}), lo);
    // Staged tiles, transposed ([i][row], [i][col]). A warp's stores cover
    // 32 / tk lines of tk steps; 32 / tk words of padding per line put them
    // on 32 distinct banks.
    int64_t line = kTile + 32 / tk;
    Value aTile = k.tile({tk, line});
    Value waTile = k.tile({tk, line});
    Value wbTile = wb ? k.tile({tk, line}) : Value();
    SmallVector<Value> accs = {k.tile({kTile, kTile})};
    if (wb)
      accs.push_back(k.tile({kTile, kTile}));
    // Blocks past the end of the segment do nothing.
    k.when(k.less(r0, count), [&] {
      k.zeroTiles(accs);
      auto steps = scf::ForOp::create(b, loc, k.index(0), depth, k.index(tk));
      {
        OpBuilder::InsertionGuard g2(b);
        b.setInsertionPoint(steps.getBody()->getTerminator());
        stage(steps.getInductionVar(), tk, lhs, rows, lo, count, r0, c0, e, wa,
              wb, depth, cols, aTile, waTile, wbTile);
        SmallVector<Value> wTiles = {waTile};
        if (wbTile)
          wTiles.push_back(wbTile);
        k.accumulateTiles(tk, aTile, wTiles, accs);
      }
      // Epilogue and writes: consecutive threads write consecutive columns.
      k.forEachOwnedOutput([&](Value tr, Value tc) {
        Value r = k.add(r0, tr), c = k.add(c0, tc);
        k.when(k.both(k.less(r, count), k.less(c, cols)), [&] {
          Value g = memref::LoadOp::create(b, loc, accs[0], ValueRange{tr, tc});
          Value u = accs.size() > 1 ? memref::LoadOp::create(b, loc, accs[1],
                                                             ValueRange{tr, tc})
                                          .getResult()
                                    : Value();
          memref::StoreOp::create(b, loc, epilogue(b, loc, g, u), out,
                                  ValueRange{k.add(lo, r), c});
        });
      });
    });
  }

  /// Copies the step at `i0` of the segment rows and of the weights into
  /// the tiles: element q of a tile is (i = q % tk, line = q / tk), so a
  /// warp reads runs of tk consecutive words of a row.
  void stage(Value i0, int64_t tk, Value lhs, Value rows, Value lo, Value count,
             Value r0, Value c0, Value e, Value wa, Value wb, Value depth,
             Value cols, Value aTile, Value waTile, Value wbTile) {
    int64_t threads = k.threadCount;
    k.threads([&](Value t) {
      k.repeat(tk * kTile / threads, [&](Value q) {
        Value flat = k.add(t, k.mul(q, k.index(threads)));
        Value ii = k.remConst(flat, tk), line = k.divConst(flat, tk);
        Value i = k.add(i0, ii);
        Value inDepth = k.less(i, depth);
        Value r = k.add(r0, line);
        Value a = k.loadOrZero(k.both(inDepth, k.less(r, count)), [&] {
          Value row = rows ? k.loadIndex(rows, {k.add(lo, r)}) : k.add(lo, r);
          return k.loadF32(lhs, {row, i});
        });
        memref::StoreOp::create(b, loc, a, aTile, ValueRange{ii, line});
        Value c = k.add(c0, line);
        Value inCols = k.both(inDepth, k.less(c, cols));
        for (auto [weights, wTile] :
             {std::pair(wa, waTile), std::pair(wb, wbTile)}) {
          if (!weights)
            continue;
          Value w = weights;
          Value v = k.loadOrZero(inCols, [&] {
            return k.loadF32(w, {e, c, i});
          });
          memref::StoreOp::create(b, loc, v, wTile, ValueRange{ii, line});
        }
      });
    });
  }

  /// y[n, d] (f32) for `kind` experts on stacks w1, w3 [E, f, d] and
  /// w2 [E, d, f]; rows null means row i of segment e is x's row
  /// offsets[e] + i.
  Value build(moe::ExpertKind kind, Value x, Value rows, Value offsets,
              Value w1, Value w3, Value w2) {
    Value xBuf = k.readBuffer(x), w1Buf = k.readBuffer(w1),
          w2Buf = k.readBuffer(w2);
    Value w3Buf = w3 ? k.readBuffer(w3) : Value();
    Value rowsBuf = rows ? k.readBuffer(rows) : Value();
    Value offBuf = k.readBuffer(offsets);
    Value n = memref::DimOp::create(b, loc, rows ? rowsBuf : xBuf, 0);
    Value numExperts = memref::DimOp::create(b, loc, w1Buf, 0);
    Value f = memref::DimOp::create(b, loc, w1Buf, 1);
    Value d = memref::DimOp::create(b, loc, w1Buf, 2);
    auto matrix = MemRefType::get({ShapedType::kDynamic, ShapedType::kDynamic},
                                  b.getF32Type());
    Value h = memref::AllocOp::create(b, loc, matrix, ValueRange{n, f});
    bool swiglu = kind == moe::ExpertKind::swiglu;
    product(xBuf, rowsBuf, offBuf, numExperts, n, w1Buf,
            swiglu ? w3Buf : Value(), d, f, h,
            [](OpBuilder &nb, Location nl, Value g, Value u) {
              return activateScalar(nb, nl, g, u);
            });
    Value y = memref::AllocOp::create(b, loc, matrix, ValueRange{n, d});
    // Rows past the last segment (dropped assignments) are zero.
    Value total = k.loadIndex(offBuf, {numExperts});
    Value tail = memref::SubViewOp::create(
        b, loc, y, ArrayRef<OpFoldResult>{total, b.getIndexAttr(0)},
        ArrayRef<OpFoldResult>{
            arith::SubIOp::create(b, loc, n, total).getResult(), d},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
    linalg::FillOp::create(b, loc, ValueRange{k.f32(0.0)}, ValueRange{tail});
    product(h, Value(), offBuf, numExperts, n, w2Buf, Value(), f, d, y,
            [](OpBuilder &, Location, Value g, Value) { return g; });
    return bufferization::ToTensorOp::create(
        b, loc, RankedTensorType::get(matrix.getShape(), b.getF32Type()), y,
        /*restrict=*/true, /*writable=*/true);
  }
};

/// With gpu-kernels, SwiGLU and GELU experts run as GPUExpertKernel. With
/// cpu-kernels, those with up to 128 rows per expert run as
/// SmallBatchKernel. Otherwise one scf.forall over experts; each
/// gathers its rows of x as it reads them and runs its MLP on its segment.
/// Small batches (a few rows per expert) read the weight stacks in place in
/// the dot form, so each selected expert's weights are read once; larger
/// ones transpose the stacks once and use the outer-product register tiles.
struct ExpertsOpLowering : OpConversionPattern<moe::ExpertsOp> {
  ExpertsOpLowering(MLIRContext *ctx, const MoEKernelOptions &kernels)
      : OpConversionPattern(ctx), kernels(kernels) {}

  MoEKernelOptions kernels;

  /// Rows per expert, on average, up to which the dot form is used.
  static constexpr int64_t kDotRowsPerExpert = 8;
  /// The same for SmallBatchKernel. In development A/B runs against the
  /// transposed stacks' register tiles (and their transposes) at E = 8,
  /// d = 1024, f = 2048, the kernel took 27 ms against 48 ms at 64 rows per
  /// expert and 54 against 117 ms at 128, was even at 256 and 20 % behind
  /// at 512; 128 keeps it where it is clearly ahead.
  static constexpr int64_t kKernelRowsPerExpert = 128;

  Value buildExperts(OpBuilder &b, Location loc, moe::ExpertsOp op,
                     OpAdaptor adaptor, bool dotForm) const {
    MLIRContext *ctx = b.getContext();
    Value x = adaptor.getInput(), rows = adaptor.getRows(),
          offsets = adaptor.getOffsets();
    auto w1Type = cast<RankedTensorType>(adaptor.getW1().getType());
    int64_t numExperts = w1Type.getDimSize(0);
    bool swiglu = op.getKind() == moe::ExpertKind::swiglu;
    OpFoldResult d = tensor::getMixedSize(b, loc, x, 1);
    OpFoldResult f = tensor::getMixedSize(b, loc, adaptor.getW1(), 1);
    OpFoldResult n = tensor::getMixedSize(b, loc, rows, 0);

    Value w1 = adaptor.getW1(), w3 = adaptor.getW3(), w2 = adaptor.getW2();
    if (!dotForm) {
      w1 = transposeStack(b, loc, w1);
      w3 = swiglu ? transposeStack(b, loc, w3) : Value();
      w2 = transposeStack(b, loc, w2);
    }
    Value out = zeroF32(b, loc, {n, d});

    auto forall = scf::ForallOp::create(
        b, loc, ArrayRef<OpFoldResult>{b.getIndexAttr(numExperts)},
        ValueRange{out}, std::nullopt);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(forall.getBody());
    Value e = forall.getInductionVar(0);
    Value lo = extractIndex(b, loc, offsets, {e});
    Value hi =
        extractIndex(b, loc, offsets,
                     {arith::AddIOp::create(b, loc, e, indexConst(b, loc, 1))});
    Value count = arith::SubIOp::create(b, loc, hi, lo);
    Value segRows = tensor::ExtractSliceOp::create(
        b, loc, rows, ArrayRef<OpFoldResult>{lo}, ArrayRef<OpFoldResult>{count},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
    auto d2 = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
    // The segment's tokens, gathered as they are read.
    Value xs = tensor::EmptyOp::create(b, loc, ArrayRef<OpFoldResult>{count, d},
                                       b.getF32Type());
    xs = linalg::GenericOp::create(
             b, loc, TypeRange{xs.getType()}, ValueRange{segRows},
             ValueRange{xs},
             ArrayRef<AffineMap>{AffineMap::get(2, 0, {d2(0)}, ctx),
                                 AffineMap::get(2, 0, {d2(0), d2(1)}, ctx)},
             {utils::IteratorType::parallel, utils::IteratorType::parallel},
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value token = arith::IndexCastOp::create(
                   nb, nl, nb.getIndexType(), args[0]);
               Value col = linalg::IndexOp::create(nb, nl, 1);
               Value v =
                   tensor::ExtractOp::create(nb, nl, x, ValueRange{token, col});
               linalg::YieldOp::create(nb, nl, toF32(nb, nl, v));
             })
             .getResult(0);
    auto product = [&](Value lhs, Value stack, OpFoldResult cols) {
      if (dotForm)
        return dotExpertMatmul(b, loc, lhs, stack, e);
      return expertMatmul(b, loc, lhs, stack, e,
                          zeroF32(b, loc, {count, cols}));
    };
    Value y;
    if (op.getKind() == moe::ExpertKind::kan) {
      // KAT's block per expert: rational, product, rational, product.
      auto rational = [&](Value v, Value a, Value bb) -> Value {
        auto slice = [&](Value stack) -> Value {
          auto type = cast<RankedTensorType>(stack.getType());
          Value sl = tensor::ExtractSliceOp::create(
              b, loc,
              RankedTensorType::get({type.getDimSize(1), type.getDimSize(2)},
                                    type.getElementType()),
              stack,
              ArrayRef<OpFoldResult>{e, b.getIndexAttr(0), b.getIndexAttr(0)},
              ArrayRef<OpFoldResult>{b.getIndexAttr(1),
                                     b.getIndexAttr(type.getDimSize(1)),
                                     b.getIndexAttr(type.getDimSize(2))},
              SmallVector<OpFoldResult>(3, b.getIndexAttr(1)));
          if (type.getElementType().isF32())
            return sl;
          AffineMap id = b.getMultiDimIdentityMap(2);
          return mapF32(b, loc,
                        {b.getIndexAttr(type.getDimSize(1)),
                         b.getIndexAttr(type.getDimSize(2))},
                        ValueRange{sl}, {id},
                        [](OpBuilder &nb, Location nl, ValueRange args) {
                          return toF32(nb, nl, args[0]);
                        });
        };
        Value num = slice(a), den = slice(bb);
        auto numType = cast<RankedTensorType>(num.getType());
        auto denType = cast<RankedTensorType>(den.getType());
        return kan::RationalOp::create(
            b, loc, v.getType(), v, num, den,
            b.getI64IntegerAttr(numType.getDimSize(1) - 1),
            b.getI64IntegerAttr(denType.getDimSize(1)));
      };
      Value h = product(rational(xs, adaptor.getA1(), adaptor.getB1()), w1, f);
      y = product(rational(h, adaptor.getA2(), adaptor.getB2()), w2, d);
    } else {
      Value g = product(xs, w1, f);
      Value u = swiglu ? product(xs, w3, f) : Value();
      Value h = activate(b, loc, {count, f}, g, u);
      y = product(h, w2, d);
    }
    b.setInsertionPointToStart(forall.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(
        b, loc, y, forall.getRegionIterArgs()[0],
        ArrayRef<OpFoldResult>{lo, b.getIndexAttr(0)},
        ArrayRef<OpFoldResult>{count, d},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
    return forall.getResult(0);
  }

  LogicalResult
  matchAndRewrite(moe::ExpertsOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    OpBuilder &b = rewriter;
    Value x = adaptor.getInput(), w1 = adaptor.getW1(), w2 = adaptor.getW2(),
          w3 = adaptor.getW3();
    checkSameDims(b, loc,
                  {{x, 1, w1, 2},
                   {w2, 1, w1, 2},
                   {w2, 2, w1, 1},
                   {w3, 1, w1, 1},
                   {w3, 2, w1, 2}},
                  "moe.experts: the input's and the weights' sizes (d, f) "
                  "must agree");
    if (!fromDispatch(op.getRows()) || !fromDispatch(op.getOffsets()))
      checkRowsAndOffsets(b, loc, x, adaptor.getRows(), adaptor.getOffsets());
    if (kernels.gpuKernels && op.getKind() != moe::ExpertKind::kan) {
      Value y = GPUExpertKernel{b, loc, kernels.workgroupMemory}.build(
          op.getKind(), x, adaptor.getRows(), adaptor.getOffsets(), w1, w3, w2);
      rewriter.replaceOpWithNewOp<tensor::CastOp>(op, op.getType(), y);
      return success();
    }
    auto w1Type = cast<RankedTensorType>(adaptor.getW1().getType());
    int64_t numExperts = w1Type.getDimSize(0);
    int64_t dStatic = w1Type.getDimSize(2), fStatic = w1Type.getDimSize(1);
    bool dotPossible = !ShapedType::isDynamic(dStatic) &&
                       !ShapedType::isDynamic(fStatic) &&
                       dStatic % kDotLanes == 0 && fStatic % kDotLanes == 0;
    Value result;
    if (!dotPossible) {
      result = buildExperts(b, loc, op, adaptor, /*dotForm=*/false);
    } else {
      // The form is chosen at run time from the number of rows.
      Value n = tensor::DimOp::create(b, loc, adaptor.getRows(), 0);
      bool kernel = kernels.cpuKernels && op.getKind() != moe::ExpertKind::kan;
      int64_t bound = kernel ? kKernelRowsPerExpert : kDotRowsPerExpert;
      Value small =
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ule, n,
                                indexConst(b, loc, bound * numExperts));
      auto ifOp = scf::IfOp::create(
          b, loc, small,
          [&](OpBuilder &tb, Location tl) {
            Value out =
                kernel ? SmallBatchKernel{tb, tl}.build(
                             op.getKind(), adaptor.getInput(),
                             adaptor.getRows(), adaptor.getOffsets(),
                             adaptor.getW1(), adaptor.getW3(), adaptor.getW2())
                       : buildExperts(tb, tl, op, adaptor, /*dotForm=*/true);
            // Both branches yield the op's type (the kernel's result has
            // the weights' static d where the input's may be dynamic).
            if (out.getType() != op.getType())
              out = tensor::CastOp::create(tb, tl, op.getType(), out);
            scf::YieldOp::create(tb, tl, out);
          },
          [&](OpBuilder &eb, Location el) {
            Value out = buildExperts(eb, el, op, adaptor, /*dotForm=*/false);
            if (out.getType() != op.getType())
              out = tensor::CastOp::create(eb, el, op.getType(), out);
            scf::YieldOp::create(eb, el, out);
          });
      result = ifOp.getResult(0);
    }
    if (result.getType() != op.getType())
      result = tensor::CastOp::create(b, loc, op.getType(), result);
    rewriter.replaceOp(op, result);
    return success();
  }
};

/// out[t, j] = shared[t, j] + sum_s w[t, s] * y[slots[t, s], j].
struct CombineOpLowering : OpConversionPattern<moe::CombineOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(moe::CombineOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    OpBuilder &b = rewriter;
    MLIRContext *ctx = b.getContext();
    Value y = adaptor.getExpertOutputs(), slots = adaptor.getSlots(),
          weights = adaptor.getWeights();
    checkSameDims(b, loc,
                  {{weights, 0, slots, 0},
                   {weights, 1, slots, 1},
                   {adaptor.getShared(), 0, slots, 0},
                   {adaptor.getShared(), 1, y, 1}},
                  "moe.combine: the slots', weights' and shared output's "
                  "sizes (T, k, d) must agree");
    // Slots from moe.dispatch index the rows of the experts' output of that
    // dispatch's rows; others are checked (a bad one would be read out of
    // bounds). Negative slots are dropped assignments.
    auto experts = op.getExpertOutputs().getDefiningOp<moe::ExpertsOp>();
    auto dispatch = op.getSlots().getDefiningOp<moe::DispatchOp>();
    if (!experts || !dispatch || experts.getRows() != dispatch.getRows()) {
      Value rowsOfY = tensor::DimOp::create(b, loc, y, 0);
      checkAll(
          b, loc,
          {tensor::DimOp::create(b, loc, slots, 0).getResult(),
           tensor::DimOp::create(b, loc, slots, 1).getResult()},
          [&](OpBuilder &nb, Location nl, ValueRange ts) {
            Value slot = tensor::ExtractOp::create(nb, nl, slots, ts);
            return arith::CmpIOp::create(
                nb, nl, arith::CmpIPredicate::slt,
                arith::IndexCastOp::create(nb, nl, nb.getIndexType(), slot),
                rowsOfY);
          },
          "moe.combine: a slot is not a row of the experts' output");
    }
    SmallVector<OpFoldResult> sizes = {tensor::getMixedSize(b, loc, slots, 0),
                                       tensor::getMixedSize(b, loc, y, 1)};
    Value init =
        adaptor.getShared() ? adaptor.getShared() : zeroF32(b, loc, sizes);
    if (adaptor.getShared()) {
      // A copy: the shared output is an operand, not a destination.
      AffineMap id = b.getMultiDimIdentityMap(2);
      init = mapF32(b, loc, sizes, init, id,
                    [](OpBuilder &, Location, ValueRange a) { return a[0]; });
    }
    auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
    AffineMap slotMap = AffineMap::get(3, 0, {d(0), d(2)}, ctx);
    Value result =
        linalg::GenericOp::create(
            b, loc, TypeRange{init.getType()}, ValueRange{slots, weights},
            ValueRange{init},
            ArrayRef<AffineMap>{slotMap, slotMap,
                                AffineMap::get(3, 0, {d(0), d(1)}, ctx)},
            {utils::IteratorType::parallel, utils::IteratorType::parallel,
             utils::IteratorType::reduction},
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              Value valid =
                  arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::sge,
                                        args[0], i32Const(nb, nl, 0));
              Value row = arith::IndexCastOp::create(
                  nb, nl, nb.getIndexType(),
                  arith::SelectOp::create(nb, nl, valid, args[0],
                                          i32Const(nb, nl, 0)));
              Value col = linalg::IndexOp::create(nb, nl, 1);
              Value v =
                  tensor::ExtractOp::create(nb, nl, y, ValueRange{row, col});
              Value term = arith::SelectOp::create(
                  nb, nl, valid, arith::MulFOp::create(nb, nl, args[1], v),
                  f32Const(nb, nl, 0.0));
              linalg::YieldOp::create(
                  nb, nl,
                  arith::AddFOp::create(nb, nl, args[2], term).getResult());
            })
            .getResult(0);
    if (result.getType() != op.getType())
      result = tensor::CastOp::create(b, loc, op.getType(), result);
    rewriter.replaceOp(op, result);
    return success();
  }
};

/// The shared experts' MLP on every token, gated by sigmoid(x gate^T) when
/// a gate is given.
struct SharedExpertsOpLowering : OpConversionPattern<moe::SharedExpertsOp> {
  SharedExpertsOpLowering(MLIRContext *ctx, const MoEKernelOptions &kernels)
      : OpConversionPattern(ctx), kernels(kernels) {}

  MoEKernelOptions kernels;
  /// With cpuKernels, up to 128 tokens through SmallBatchKernel (one expert,
  /// every token).
  static constexpr int64_t kKernelTokens = 128;

  /// The products on transposed weights.
  static Value products(OpBuilder &b, Location loc, Value x,
                        OpAdaptor adaptor) {
    OpFoldResult t = tensor::getMixedSize(b, loc, x, 0);
    OpFoldResult d = tensor::getMixedSize(b, loc, x, 1);
    OpFoldResult f = tensor::getMixedSize(b, loc, adaptor.getW1(), 0);
    Value g = matmulF32(b, loc, x, transpose2d(b, loc, adaptor.getW1()),
                        zeroF32(b, loc, {t, f}));
    Value u;
    if (Value w3 = adaptor.getW3())
      u = matmulF32(b, loc, x, transpose2d(b, loc, w3),
                    zeroF32(b, loc, {t, f}));
    Value h = activate(b, loc, {t, f}, g, u);
    return matmulF32(b, loc, h, transpose2d(b, loc, adaptor.getW2()),
                     zeroF32(b, loc, {t, d}));
  }

  /// One expert of SmallBatchKernel (or GPUExpertKernel) over all tokens:
  /// weights `[o, c]` viewed as stacks `[1, o, c]`, one segment [0, T).
  static Value kernel(OpBuilder &b, Location loc, moe::SharedExpertsOp op,
                      Value x, OpAdaptor adaptor,
                      std::optional<bool> gpuWorkgroupMemory = std::nullopt) {
    auto stack = [&](Value w) -> Value {
      if (!w)
        return w;
      auto type = cast<RankedTensorType>(w.getType());
      return tensor::ExpandShapeOp::create(
          b, loc,
          RankedTensorType::get({1, type.getDimSize(0), type.getDimSize(1)},
                                type.getElementType()),
          w, SmallVector<ReassociationIndices>{{0, 1}, {2}});
    };
    Value t = arith::IndexCastOp::create(b, loc, b.getI32Type(),
                                         tensor::DimOp::create(b, loc, x, 0));
    Value offsets = tensor::FromElementsOp::create(
        b, loc, RankedTensorType::get({2}, b.getI32Type()),
        ValueRange{i32Const(b, loc, 0), t});
    if (gpuWorkgroupMemory)
      return GPUExpertKernel{b, loc, *gpuWorkgroupMemory}.build(
          op.getKind(), x, Value(), offsets, stack(adaptor.getW1()),
          stack(adaptor.getW3()), stack(adaptor.getW2()));
    return SmallBatchKernel{b, loc}.build(
        op.getKind(), x, Value(), offsets, stack(adaptor.getW1()),
        stack(adaptor.getW3()), stack(adaptor.getW2()));
  }

  LogicalResult
  matchAndRewrite(moe::SharedExpertsOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    OpBuilder &b = rewriter;
    MLIRContext *ctx = b.getContext();
    Value x = adaptor.getInput();
    Value w1 = adaptor.getW1(), w2 = adaptor.getW2(), w3 = adaptor.getW3(),
          gate = adaptor.getGate();
    checkSameDims(b, loc,
                  {{x, 1, w1, 1},
                   {w2, 0, w1, 1},
                   {w2, 1, w1, 0},
                   {w3, 0, w1, 0},
                   {w3, 1, w1, 1},
                   {gate, 1, w1, 1}},
                  "moe.shared_experts: the input's and the weights' sizes "
                  "(d, f) must agree");
    OpFoldResult t = tensor::getMixedSize(b, loc, x, 0);
    OpFoldResult d = tensor::getMixedSize(b, loc, x, 1);
    auto w1Type = cast<RankedTensorType>(adaptor.getW1().getType());
    bool kernelPossible = kernels.cpuKernels && w1Type.hasStaticShape() &&
                          w1Type.getDimSize(0) % kDotLanes == 0 &&
                          w1Type.getDimSize(1) % kDotLanes == 0;
    Value y;
    if (kernels.gpuKernels) {
      y = kernel(b, loc, op, x, adaptor, kernels.workgroupMemory);
      if (y.getType() != op.getType())
        y = tensor::CastOp::create(b, loc, op.getType(), y);
    } else if (!kernelPossible) {
      y = products(b, loc, x, adaptor);
    } else {
      // The form is chosen at run time from the number of tokens.
      Value small = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ule,
                                          tensor::DimOp::create(b, loc, x, 0),
                                          indexConst(b, loc, kKernelTokens));
      auto ifOp = scf::IfOp::create(
          b, loc, small,
          [&](OpBuilder &tb, Location tl) {
            Value r = kernel(tb, tl, op, x, adaptor);
            if (r.getType() != op.getType())
              r = tensor::CastOp::create(tb, tl, op.getType(), r);
            scf::YieldOp::create(tb, tl, r);
          },
          [&](OpBuilder &eb, Location el) {
            Value r = products(eb, el, x, adaptor);
            if (r.getType() != op.getType())
              r = tensor::CastOp::create(eb, el, op.getType(), r);
            scf::YieldOp::create(eb, el, r);
          });
      y = ifOp.getResult(0);
    }
    if (Value gate = adaptor.getGate()) {
      Value logit = matmulF32(b, loc, x, transpose2d(b, loc, gate),
                              zeroF32(b, loc, {t, b.getIndexAttr(1)}));
      auto dm = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
      y = mapF32(
          b, loc, {t, d}, ValueRange{y, logit},
          {AffineMap::get(2, 0, {dm(0), dm(1)}, ctx),
           AffineMap::get(2, 0, {dm(0), getAffineConstantExpr(0, ctx)}, ctx)},
          [](OpBuilder &nb, Location nl, ValueRange a) {
            Value e = math::ExpOp::create(nb, nl,
                                          arith::NegFOp::create(nb, nl, a[1]));
            Value den = arith::AddFOp::create(nb, nl, e, f32Const(nb, nl, 1.0));
            return arith::DivFOp::create(nb, nl, a[0], den).getResult();
          });
    }
    if (y.getType() != op.getType())
      y = tensor::CastOp::create(b, loc, op.getType(), y);
    rewriter.replaceOp(op, y);
    return success();
  }
};

struct ConvertMoEToLinalgPass
    : moka::impl::ConvertMoEToLinalgPassBase<ConvertMoEToLinalgPass> {
  using Base::Base;

  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    ConversionTarget target(*ctx);
    target.addIllegalDialect<moe::MoEDialect>();
    // kan ops are legal here: GR-KAN experts become kan.rational ops that
    // convert-kan-to-linalg lowers next.
    target.addLegalDialect<
        arith::ArithDialect, bufferization::BufferizationDialect,
        cf::ControlFlowDialect, kan::KANDialect, linalg::LinalgDialect,
        math::MathDialect, memref::MemRefDialect, scf::SCFDialect,
        tensor::TensorDialect, vector::VectorDialect>();
    RewritePatternSet patterns(ctx);
    populateMoEToLinalgConversionPatterns(
        patterns, MoEKernelOptions{cpuKernels, gpuKernels, workgroupMemory});
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      return signalPassFailure();
    // GELU's erf has no LLVM intrinsic: a polynomial approximation (about
    // 1e-7 absolute error in f32) that vectorizes.
    RewritePatternSet erf(ctx);
    populatePolynomialApproximateErfPattern(erf);
    if (failed(applyPatternsGreedily(getOperation(), std::move(erf))))
      signalPassFailure();
  }
};

} // namespace

void moka::populateMoEToLinalgConversionPatterns(
    RewritePatternSet &patterns, const MoEKernelOptions &kernels) {
  patterns.add<RouteOpLowering, DispatchOpLowering, CombineOpLowering>(
      patterns.getContext());
  patterns.add<ExpertsOpLowering, SharedExpertsOpLowering>(
      patterns.getContext(), kernels);
}
