//===- KANToLinalg.cpp - Lowering of `kan` to `linalg` --------------------===//
//
// Rewrites `kan` operations as `linalg.generic` on tensors.
//
//===----------------------------------------------------------------------===//

#include "moka/Conversion/KANToLinalg/KANToLinalg.h"
#include "moka/Conversion/Passes.h"
#include "moka/Dialect/KAN/IR/KANOps.h"
#include "moka/Dialect/KAN/Transforms/Transforms.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Transforms/DialectConversion.h"

#include <limits>

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

/// The channels-last view `[..., G, C/G]` of a tensor `[..., C]`: a reshape,
/// not a copy. Leading dimensions are kept as they are (folding several
/// dynamic ones into one would need a multi-dynamic-dim expand_shape on the
/// way back).
struct GroupedView {
  Value value;
  RankedTensorType type;
  SmallVector<OpFoldResult> sizes;
  SmallVector<ReassociationIndices> reassociation;
};

GroupedView groupChannels(OpBuilder &b, Location loc, Value x, int64_t groups,
                          bool checkDivisible) {
  auto xType = cast<RankedTensorType>(x.getType());
  int64_t rank = xType.getRank();
  int64_t channels = xType.getDimSize(rank - 1);
  OpFoldResult perGroup;
  int64_t perGroupStatic = ShapedType::kDynamic;
  if (ShapedType::isDynamic(channels)) {
    // The verifier checks divisibility of a static C; a dynamic one is
    // checked at run time.
    Value c = tensor::DimOp::create(b, loc, x, rank - 1);
    Value g = arith::ConstantIndexOp::create(b, loc, groups);
    if (checkDivisible) {
      Value rem = arith::RemUIOp::create(b, loc, c, g);
      Value zero = arith::ConstantIndexOp::create(b, loc, 0);
      Value divisible =
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, rem, zero);
      cf::AssertOp::create(b, loc, divisible,
                           "kan.rational: channel count is not divisible by "
                           "the number of groups");
    }
    perGroup = arith::DivUIOp::create(b, loc, c, g).getResult();
  } else {
    perGroupStatic = channels / groups;
    perGroup = b.getIndexAttr(perGroupStatic);
  }
  GroupedView view;
  view.sizes = tensor::getMixedSizes(b, loc, x);
  view.sizes.back() = b.getIndexAttr(groups);
  view.sizes.push_back(perGroup);
  SmallVector<int64_t> shape(xType.getShape());
  shape.back() = groups;
  shape.push_back(perGroupStatic);
  view.type = RankedTensorType::get(shape, xType.getElementType());
  for (int64_t i = 0; i < rank - 1; ++i)
    view.reassociation.push_back({i});
  view.reassociation.push_back({rank - 1, rank});
  view.value = tensor::ExpandShapeOp::create(b, loc, view.type, x,
                                             view.reassociation, view.sizes);
  return view;
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

    GroupedView grouped =
        groupChannels(rewriter, loc, x, groups, /*checkDivisible=*/true);
    auto groupedType = grouped.type;
    SmallVector<OpFoldResult> groupedSizes = grouped.sizes;
    SmallVector<ReassociationIndices> reassociation = grouped.reassociation;

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

    SmallVector<Value> inputs = {grouped.value};
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
          Value y = kan::buildRational(b, l, v, args.slice(1, m + 1),
                                       args.slice(m + 2, n));
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

/// Rows of the flattened input per partial sum of the coefficient gradients.
/// Fixed, so that the partition (and with it every rounding) depends only on
/// the shape, never on the number of threads.
constexpr int64_t kGradRowsPerPartial = 8;

/// Largest power of two up to 16 that divides a static `extent`; 1 when
/// `extent` is dynamic. Partial sums keep this many lanes apart so that the
/// reduction vectorizes without reassociating across tiles.
int64_t laneCount(int64_t extent) {
  if (ShapedType::isDynamic(extent))
    return 1;
  for (int64_t l : {16, 8, 4, 2})
    if (extent % l == 0)
      return l;
  return 1;
}

Value f32Constant(OpBuilder &b, Location loc, double v) {
  return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
}

/// `v` as the rank-4 view `[R, G, J, L]` of its elements, `R` every leading
/// dimension folded together and `C = G * J * L`.
Value flattenForPartials(OpBuilder &b, Location loc, Value v, int64_t groups,
                         int64_t lanes) {
  auto type = cast<RankedTensorType>(v.getType());
  int64_t rank = type.getRank();
  Value rows2d;
  if (rank == 1) {
    auto t2 =
        RankedTensorType::get({1, type.getDimSize(0)}, type.getElementType());
    SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1),
                                       tensor::getMixedSize(b, loc, v, 0)};
    rows2d = tensor::ExpandShapeOp::create(
        b, loc, t2, v, SmallVector<ReassociationIndices>{{0, 1}}, sizes);
  } else {
    ReassociationIndices lead;
    for (int64_t i = 0; i < rank - 1; ++i)
      lead.push_back(i);
    rows2d = tensor::CollapseShapeOp::create(
        b, loc, v, SmallVector<ReassociationIndices>{lead, {rank - 1}});
  }
  auto t2 = cast<RankedTensorType>(rows2d.getType());
  int64_t c = t2.getDimSize(1);
  int64_t j = ShapedType::isDynamic(c) ? c : c / (groups * lanes);
  OpFoldResult jSize;
  if (ShapedType::isDynamic(c)) {
    Value cv = tensor::DimOp::create(b, loc, rows2d, 1);
    Value div = arith::ConstantIndexOp::create(b, loc, groups * lanes);
    jSize = arith::DivUIOp::create(b, loc, cv, div).getResult();
  } else {
    jSize = b.getIndexAttr(j);
  }
  auto t4 = RankedTensorType::get({t2.getDimSize(0), groups, j, lanes},
                                  t2.getElementType());
  SmallVector<OpFoldResult> sizes = {tensor::getMixedSize(b, loc, rows2d, 0),
                                     b.getIndexAttr(groups), jSize,
                                     b.getIndexAttr(lanes)};
  return tensor::ExpandShapeOp::create(
      b, loc, t4, rows2d, SmallVector<ReassociationIndices>{{0}, {1, 2, 3}},
      sizes);
}

struct RationalGradOpLowering : OpConversionPattern<kan::RationalGradOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(kan::RationalGradOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value x = adaptor.getInput(), dy = adaptor.getGradOutput();
    auto xType = cast<RankedTensorType>(x.getType());
    Type elt = xType.getElementType();
    Type f32 = rewriter.getF32Type();
    int64_t rank = xType.getRank();
    int64_t groups = op.getNumGroups();
    int64_t m = op.getM(), n = op.getN();
    int64_t numTerms = m + 1 + n;
    bool shared = op.hasSharedNumerator();
    auto numType = cast<RankedTensorType>(op.getNumerator().getType());
    Type coeffElt = numType.getElementType();

    // x and dy have one type; their dynamic sizes must agree at run time.
    for (int64_t i = 0; i < rank; ++i) {
      if (!xType.isDynamicDim(i))
        continue;
      Value xd = tensor::DimOp::create(rewriter, loc, x, i);
      Value dyd = tensor::DimOp::create(rewriter, loc, dy, i);
      Value same = arith::CmpIOp::create(rewriter, loc,
                                         arith::CmpIPredicate::eq, xd, dyd);
      cf::AssertOp::create(rewriter, loc, same,
                           "kan.rational_grad: the shapes of the input and "
                           "of the output gradient differ");
    }

    // No elements (a static size 0): dx is empty, the coefficient
    // gradients are sums over nothing.
    if (xType.hasStaticShape() && xType.getNumElements() == 0) {
      auto zeros = [&](Type type) -> Value {
        auto t = cast<RankedTensorType>(type);
        Value empty = tensor::EmptyOp::create(rewriter, loc, t.getShape(),
                                              t.getElementType());
        Value zero = arith::ConstantOp::create(
            rewriter, loc, rewriter.getZeroAttr(t.getElementType()));
        return linalg::FillOp::create(rewriter, loc, zero, empty).getResult(0);
      };
      rewriter.replaceOp(op, {zeros(op.getResult(0).getType()),
                              zeros(op.getResult(1).getType()),
                              zeros(op.getResult(2).getType())});
      return success();
    }

    Value num = mapToF32(rewriter, loc, adaptor.getNumerator(), nullptr);
    Value absDen = mapToF32(rewriter, loc, adaptor.getDenominator(),
                            [](OpBuilder &b, Location l, Value v) -> Value {
                              return math::AbsFOp::create(b, l, v);
                            });
    auto toF32 = [&](OpBuilder &b, Location l, Value v) -> Value {
      return v.getType().isF32() ? v : arith::ExtFOp::create(b, l, f32, v);
    };

    // dx = dy * (R/Q - P*S/Q^2), element-wise on the grouped view.
    GroupedView gx =
        groupChannels(rewriter, loc, x, groups, /*checkDivisible=*/true);
    GroupedView gdy =
        groupChannels(rewriter, loc, dy, groups, /*checkDivisible=*/false);
    int64_t loops = rank + 1;
    AffineMap identity = AffineMap::getMultiDimIdentityMap(loops, ctx);
    AffineMap perGroupMap =
        AffineMap::get(loops, 0, {getAffineDimExpr(rank - 1, ctx)}, ctx);
    AffineMap scalarMap = AffineMap::get(loops, 0, {}, ctx);
    SmallVector<Value> inputs = {gx.value, gdy.value};
    SmallVector<AffineMap> maps = {identity, identity};
    for (int64_t i = 0; i <= m; ++i) {
      inputs.push_back(extractColumn(rewriter, loc, num, i, shared));
      maps.push_back(shared ? scalarMap : perGroupMap);
    }
    for (int64_t j = 0; j < n; ++j) {
      inputs.push_back(extractColumn(rewriter, loc, absDen, j, false));
      maps.push_back(perGroupMap);
    }
    maps.push_back(identity);
    Value dxInit = tensor::EmptyOp::create(rewriter, loc, gx.sizes, elt);
    SmallVector<utils::IteratorType> parallel(loops,
                                              utils::IteratorType::parallel);
    // The per-element quantities of the gradients, from the f32 values v
    // (x) and d (dy) and the coefficient operands a, bb:
    //   t = dy / Q, u = -dy P / Q^2, dx = t R + u S,
    // with R = P' and S = sign(x) sum_j j |b_j| |x|^(j-1), all by Horner's
    // rule and one division.
    struct GradTerms {
      Value t, u, dx, absX;
    };
    auto gradTerms = [&](OpBuilder &b, Location l, Value v, Value d,
                         ValueRange a, ValueRange bb) {
      Value zero = f32Constant(b, l, 0.0);
      Value one = f32Constant(b, l, 1.0);
      Value p = a[m];
      Value r = zero;
      for (int64_t i = m - 1; i >= 0; --i) {
        r = math::FmaOp::create(b, l, r, v, p);
        p = math::FmaOp::create(b, l, p, v, a[i]);
      }
      Value ax = math::AbsFOp::create(b, l, v);
      Value q = one, s = zero;
      if (n > 0) {
        Value sp = zero;
        q = bb[n - 1];
        for (int64_t j = n - 2; j >= 0; --j) {
          sp = math::FmaOp::create(b, l, sp, ax, q);
          q = math::FmaOp::create(b, l, q, ax, bb[j]);
        }
        sp = math::FmaOp::create(b, l, sp, ax, q);
        q = math::FmaOp::create(b, l, q, ax, one);
        Value isZero =
            arith::CmpFOp::create(b, l, arith::CmpFPredicate::OEQ, v, zero);
        s = arith::SelectOp::create(b, l, isZero, zero,
                                    math::CopySignOp::create(b, l, sp, v));
      }
      // Q beyond f32 for a finite x (|x| past ~1e9.5 for n = 4): 1/Q
      // would be 0 and drop terms x^i / Q that are finite; NaN says the
      // gradient is lost. (For x = +-inf the formula itself gives 1/Q = 0.)
      Value inf = f32Constant(b, l, std::numeric_limits<double>::infinity());
      Value lost = arith::AndIOp::create(
          b, l, arith::CmpFOp::create(b, l, arith::CmpFPredicate::OEQ, q, inf),
          arith::CmpFOp::create(b, l, arith::CmpFPredicate::ONE, ax, inf));
      Value rq = arith::SelectOp::create(
          b, l, lost,
          f32Constant(b, l, std::numeric_limits<double>::quiet_NaN()),
          arith::DivFOp::create(b, l, one, q));
      Value t = arith::MulFOp::create(b, l, d, rq);
      Value u = arith::NegFOp::create(
          b, l,
          arith::MulFOp::create(b, l, arith::MulFOp::create(b, l, t, p), rq));
      Value dxv =
          math::FmaOp::create(b, l, u, s, arith::MulFOp::create(b, l, t, r));
      return GradTerms{t, u, dxv, ax};
    };
    auto storage = [&](OpBuilder &b, Location l, Value v) {
      return elt == f32 ? v : arith::TruncFOp::create(b, l, elt, v).getResult();
    };
    auto dxBody = [&](OpBuilder &b, Location l, ValueRange args) {
      GradTerms g = gradTerms(b, l, toF32(b, l, args[0]), toF32(b, l, args[1]),
                              args.slice(2, m + 1), args.slice(m + 3, n));
      linalg::YieldOp::create(b, l, storage(b, l, g.dx));
    };
    // dx is computed in the same pass over the rows as the coefficient
    // partials (x and dy are read from memory once) unless the leading
    // dimensions cannot be restored from the flattened rows (more than one
    // dynamic leading dimension).
    int64_t dynamicLead =
        llvm::count_if(xType.getShape().drop_back(),
                       [](int64_t d) { return ShapedType::isDynamic(d); });
    bool fuseDx = dynamicLead <= 1;
    Value dx;
    if (!fuseDx) {
      auto dxOp =
          linalg::GenericOp::create(rewriter, loc, TypeRange{gx.type}, inputs,
                                    ValueRange{dxInit}, maps, parallel, dxBody);
      dx = tensor::CollapseShapeOp::create(rewriter, loc, xType,
                                           dxOp.getResult(0), gx.reassociation);
    }

    // Coefficient gradients: partial sums over fixed blocks of rows, each
    // keeping `lanes` channel lanes apart, then one reduction in a fixed
    // order.
    int64_t perGroupStatic = gx.type.getDimSize(rank);
    int64_t lanes = laneCount(perGroupStatic);
    Value x4 = flattenForPartials(rewriter, loc, x, groups, lanes);
    Value dy4 = flattenForPartials(rewriter, loc, dy, groups, lanes);
    Value rows = tensor::DimOp::create(rewriter, loc, x4, 0);
    Value jDim = tensor::DimOp::create(rewriter, loc, x4, 2);
    AffineExpr s0 = getAffineSymbolExpr(0, ctx);
    OpFoldResult numPartials = affine::makeComposedFoldedAffineApply(
        rewriter, loc, s0.ceilDiv(kGradRowsPerPartial), {rows});
    // One [P, G, L] tensor of partials per coefficient: each shared output of
    // the forall then has exactly one parallel_insert_slice.
    SmallVector<OpFoldResult> partialSizes = {numPartials,
                                              rewriter.getIndexAttr(groups),
                                              rewriter.getIndexAttr(lanes)};
    SmallVector<Value> partialsInit;
    for (int64_t k = 0; k < numTerms; ++k)
      partialsInit.push_back(
          tensor::EmptyOp::create(rewriter, loc, partialSizes, f32));

    SmallVector<Value> sharedInits(partialsInit);
    if (fuseDx)
      sharedInits.push_back(tensor::EmptyOp::create(
          rewriter, loc, tensor::getMixedSizes(rewriter, loc, x4), elt));
    auto forall = scf::ForallOp::create(rewriter, loc,
                                        ArrayRef<OpFoldResult>{numPartials},
                                        sharedInits, std::nullopt);
    {
      OpBuilder::InsertionGuard guard(rewriter);
      rewriter.setInsertionPointToStart(forall.getBody());
      Value p = forall.getInductionVar(0);
      AffineExpr d0 = getAffineDimExpr(0, ctx);
      OpFoldResult offset = affine::makeComposedFoldedAffineApply(
          rewriter, loc, d0 * kGradRowsPerPartial, {p});
      OpFoldResult count = affine::makeComposedFoldedAffineMin(
          rewriter, loc,
          AffineMap::get(1, 1,
                         {getAffineConstantExpr(kGradRowsPerPartial, ctx),
                          s0 - d0 * kGradRowsPerPartial},
                         ctx),
          {p, rows});
      OpFoldResult zeroIdx = rewriter.getIndexAttr(0);
      OpFoldResult oneIdx = rewriter.getIndexAttr(1);
      SmallVector<OpFoldResult> offs = {offset, zeroIdx, zeroIdx, zeroIdx};
      SmallVector<OpFoldResult> sizes = {count, rewriter.getIndexAttr(groups),
                                         jDim, rewriter.getIndexAttr(lanes)};
      SmallVector<OpFoldResult> strides(4, oneIdx);
      Value xs = tensor::ExtractSliceOp::create(rewriter, loc, x4, offs, sizes,
                                                strides);
      Value dys = tensor::ExtractSliceOp::create(rewriter, loc, dy4, offs,
                                                 sizes, strides);

      Value dxBlock, tBlock, uBlock;
      if (fuseDx) {
        AffineMap id4 = rewriter.getMultiDimIdentityMap(4);
        AffineMap g4 = AffineMap::get(4, 0, {getAffineDimExpr(1, ctx)}, ctx);
        AffineMap none4 = AffineMap::get(4, 0, {}, ctx);
        SmallVector<Value> dxIns = {xs, dys};
        SmallVector<AffineMap> dxMaps = {id4, id4};
        for (int64_t i = 0; i <= m; ++i) {
          dxIns.push_back(extractColumn(rewriter, loc, num, i, shared));
          dxMaps.push_back(shared ? none4 : g4);
        }
        for (int64_t j = 0; j < n; ++j) {
          dxIns.push_back(extractColumn(rewriter, loc, absDen, j, false));
          dxMaps.push_back(g4);
        }
        dxMaps.push_back(id4);
        // The block's slice of the shared result is the destination, so the
        // block is written in place.
        Value blockInit = tensor::ExtractSliceOp::create(
            rewriter, loc, forall.getRegionIterArgs()[numTerms], offs, sizes,
            strides);
        // Besides dx, the block's t = dy / Q and u = -dy P / Q^2 (f32), from
        // which the coefficient partials follow without evaluating P and Q
        // again; they stay in cache.
        Value tInit = tensor::EmptyOp::create(rewriter, loc, sizes, f32);
        Value uInit = tensor::EmptyOp::create(rewriter, loc, sizes, f32);
        dxMaps.append({id4, id4});
        auto dxOp = linalg::GenericOp::create(
            rewriter, loc,
            TypeRange{blockInit.getType(), tInit.getType(), uInit.getType()},
            dxIns, ValueRange{blockInit, tInit, uInit}, dxMaps,
            SmallVector<utils::IteratorType>(4, utils::IteratorType::parallel),
            [&](OpBuilder &b, Location l, ValueRange args) {
              GradTerms g =
                  gradTerms(b, l, toF32(b, l, args[0]), toF32(b, l, args[1]),
                            args.slice(2, m + 1), args.slice(m + 3, n));
              linalg::YieldOp::create(
                  b, l, ValueRange{storage(b, l, g.dx), g.t, g.u});
            });
        dxBlock = dxOp.getResult(0);
        tBlock = dxOp.getResult(1);
        uBlock = dxOp.getResult(2);
      }

      // Loops (g, r, j, l): g and l parallel, r and j reduced.
      auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
      AffineMap elemMap = AffineMap::get(4, 0, {d(1), d(0), d(2), d(3)}, ctx);
      AffineMap gMap = AffineMap::get(4, 0, {d(0)}, ctx);
      AffineMap none = AffineMap::get(4, 0, {}, ctx);
      AffineMap outMap = AffineMap::get(4, 0, {d(0), d(3)}, ctx);
      SmallVector<Value> ins = {xs, dys};
      SmallVector<AffineMap> pmaps = {elemMap, elemMap};
      if (fuseDx) {
        ins = {xs, tBlock, uBlock};
        pmaps.push_back(elemMap);
      } else {
        for (int64_t i = 0; i <= m; ++i) {
          ins.push_back(extractColumn(rewriter, loc, num, i, shared));
          pmaps.push_back(shared ? none : gMap);
        }
        for (int64_t j = 0; j < n; ++j) {
          ins.push_back(extractColumn(rewriter, loc, absDen, j, false));
          pmaps.push_back(gMap);
        }
      }
      Value zero = f32Constant(rewriter, loc, 0.0);
      // One zero-filled accumulator per coefficient: the block's row of that
      // coefficient's partials, accumulated in place.
      SmallVector<Value> outs;
      auto accType = RankedTensorType::get({groups, lanes}, f32);
      for (int64_t k = 0; k < numTerms; ++k) {
        Value acc = tensor::ExtractSliceOp::create(
            rewriter, loc, accType, forall.getRegionIterArgs()[k],
            ArrayRef<OpFoldResult>{p, zeroIdx, zeroIdx},
            ArrayRef<OpFoldResult>{oneIdx, rewriter.getIndexAttr(groups),
                                   rewriter.getIndexAttr(lanes)},
            ArrayRef<OpFoldResult>{oneIdx, oneIdx, oneIdx});
        outs.push_back(
            linalg::FillOp::create(rewriter, loc, zero, acc).getResult(0));
      }
      SmallVector<Type> outTypes(numTerms, outs.front().getType());
      pmaps.append(numTerms, outMap);
      auto partial = linalg::GenericOp::create(
          rewriter, loc, outTypes, ins, outs, pmaps,
          {utils::IteratorType::parallel, utils::IteratorType::reduction,
           utils::IteratorType::reduction, utils::IteratorType::parallel},
          [&](OpBuilder &b, Location l, ValueRange args) {
            Value v = toF32(b, l, args[0]);
            ValueRange acc = args.take_back(numTerms);
            // da_i += t x^i; db_j += u |x|^j (sign(b_j) applied once at the
            // end).
            auto accumulate = [&](Value t, Value u, Value ax) {
              SmallVector<Value> results;
              Value term = t;
              for (int64_t i = 0; i <= m; ++i) {
                if (i > 0)
                  term = arith::MulFOp::create(b, l, term, v);
                results.push_back(arith::AddFOp::create(b, l, acc[i], term));
              }
              Value uterm = u;
              for (int64_t j = 0; j < n; ++j) {
                uterm = arith::MulFOp::create(b, l, uterm, ax);
                results.push_back(
                    arith::AddFOp::create(b, l, acc[m + 1 + j], uterm));
              }
              linalg::YieldOp::create(b, l, results);
            };
            if (fuseDx) {
              accumulate(args[1], args[2], math::AbsFOp::create(b, l, v));
              return;
            }
            GradTerms g = gradTerms(b, l, v, toF32(b, l, args[1]),
                                    args.slice(2, m + 1), args.slice(m + 3, n));
            accumulate(g.t, g.u, g.absX);
          });
      rewriter.setInsertionPointToStart(forall.getTerminator().getBody());
      for (int64_t k = 0; k < numTerms; ++k) {
        SmallVector<OpFoldResult> dst = {p, zeroIdx, zeroIdx};
        SmallVector<OpFoldResult> dstSizes = {oneIdx,
                                              rewriter.getIndexAttr(groups),
                                              rewriter.getIndexAttr(lanes)};
        SmallVector<OpFoldResult> unitStrides(3, oneIdx);
        tensor::ParallelInsertSliceOp::create(
            rewriter, loc, partial.getResult(k), forall.getRegionIterArgs()[k],
            dst, dstSizes, unitStrides);
      }
      if (fuseDx)
        tensor::ParallelInsertSliceOp::create(
            rewriter, loc, dxBlock, forall.getRegionIterArgs()[numTerms], offs,
            sizes, strides);
    }
    if (fuseDx) {
      // [R, G, J, L] back to the input's shape.
      Value dx4 = forall.getResult(numTerms);
      if (rank == 1) {
        dx = tensor::CollapseShapeOp::create(
            rewriter, loc, dx4,
            SmallVector<ReassociationIndices>{{0, 1, 2, 3}});
      } else {
        Value rows2d = tensor::CollapseShapeOp::create(
            rewriter, loc, dx4,
            SmallVector<ReassociationIndices>{{0}, {1, 2, 3}});
        if (rank == 2) {
          dx = rows2d;
        } else {
          ReassociationIndices leadDims;
          for (int64_t i = 0; i < rank - 1; ++i)
            leadDims.push_back(i);
          dx = tensor::ExpandShapeOp::create(
              rewriter, loc, xType, rows2d,
              SmallVector<ReassociationIndices>{leadDims, {rank - 1}},
              tensor::getMixedSizes(rewriter, loc, x));
        }
      }
      if (dx.getType() != xType)
        dx = tensor::CastOp::create(rewriter, loc, xType, dx);
    }

    // Fixed-order sum over partials and lanes (and over groups for a shared
    // numerator).
    // The partial sums are added in a fixed order in f64: the whole-batch
    // sums may cancel, and thousands of f32 partials added in f32 would
    // cost digits; the result is rounded to f32 once.
    Type f64 = rewriter.getF64Type();
    auto sumInto = [&](Value src, ArrayRef<AffineExpr> srcExprs,
                       ArrayRef<AffineExpr> outExprs, ArrayRef<int64_t> shape,
                       unsigned numLoops,
                       ArrayRef<utils::IteratorType> iterators) -> Value {
      Value empty = tensor::EmptyOp::create(rewriter, loc, shape, f64);
      Value zero64 =
          arith::ConstantOp::create(rewriter, loc, rewriter.getF64FloatAttr(0));
      Value init =
          linalg::FillOp::create(rewriter, loc, zero64, empty).getResult(0);
      auto sum = linalg::GenericOp::create(
          rewriter, loc, TypeRange{init.getType()}, ValueRange{src},
          ValueRange{init},
          ArrayRef<AffineMap>{AffineMap::get(numLoops, 0, srcExprs, ctx),
                              AffineMap::get(numLoops, 0, outExprs, ctx)},
          iterators, [&](OpBuilder &b, Location l, ValueRange args) {
            Value v = args[0].getType().isF64()
                          ? args[0]
                          : arith::ExtFOp::create(b, l, f64, args[0]);
            linalg::YieldOp::create(
                b, l, arith::AddFOp::create(b, l, args[1], v).getResult());
          });
      // Back to f32, element-wise.
      Value out = tensor::EmptyOp::create(rewriter, loc, shape, f32);
      AffineMap id = rewriter.getMultiDimIdentityMap(shape.size());
      return linalg::GenericOp::create(
                 rewriter, loc, TypeRange{out.getType()},
                 ValueRange{sum.getResult(0)}, ValueRange{out},
                 ArrayRef<AffineMap>{id, id},
                 SmallVector<utils::IteratorType>(
                     shape.size(), utils::IteratorType::parallel),
                 [&](OpBuilder &b, Location l, ValueRange args) {
                   linalg::YieldOp::create(
                       b, l,
                       arith::TruncFOp::create(b, l, b.getF32Type(), args[0])
                           .getResult());
                 })
          .getResult(0);
    };
    auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
    using IT = utils::IteratorType;
    // Per coefficient, loops (g, p, l); the sums become the columns of
    // totals[G, K].
    Value totalsEmpty = tensor::EmptyOp::create(
        rewriter, loc, ArrayRef<int64_t>{groups, numTerms}, f32);
    Value totals = totalsEmpty;
    for (int64_t k = 0; k < numTerms; ++k) {
      Value column =
          sumInto(forall.getResult(k), {d(1), d(0), d(2)}, {d(0)}, {groups}, 3,
                  {IT::parallel, IT::reduction, IT::reduction});
      totals = tensor::InsertSliceOp::create(
          rewriter, loc, column, totals,
          ArrayRef<OpFoldResult>{rewriter.getIndexAttr(0),
                                 rewriter.getIndexAttr(k)},
          ArrayRef<OpFoldResult>{rewriter.getIndexAttr(groups),
                                 rewriter.getIndexAttr(1)},
          ArrayRef<OpFoldResult>{rewriter.getIndexAttr(1),
                                 rewriter.getIndexAttr(1)});
    }

    SmallVector<OpFoldResult> unit(2, rewriter.getIndexAttr(1));
    Value daTotals = tensor::ExtractSliceOp::create(
        rewriter, loc, totals,
        ArrayRef<OpFoldResult>{rewriter.getIndexAttr(0),
                               rewriter.getIndexAttr(0)},
        ArrayRef<OpFoldResult>{rewriter.getIndexAttr(groups),
                               rewriter.getIndexAttr(m + 1)},
        unit);
    if (shared) {
      // Loops (i, g).
      daTotals =
          sumInto(daTotals, {d(1), d(0)}, {getAffineConstantExpr(0, ctx), d(0)},
                  {1, m + 1}, 2, {IT::parallel, IT::reduction});
    }
    Value da = mapToType(rewriter, loc, daTotals, coeffElt);

    Value db;
    auto denType = cast<RankedTensorType>(op.getDenominator().getType());
    if (n == 0) {
      db = tensor::EmptyOp::create(rewriter, loc, denType.getShape(),
                                   denType.getElementType());
    } else {
      Value dbTotals = tensor::ExtractSliceOp::create(
          rewriter, loc, totals,
          ArrayRef<OpFoldResult>{rewriter.getIndexAttr(0),
                                 rewriter.getIndexAttr(m + 1)},
          ArrayRef<OpFoldResult>{rewriter.getIndexAttr(groups),
                                 rewriter.getIndexAttr(n)},
          unit);
      // times sign(b), as torch.sign (0 for 0).
      Value init =
          tensor::EmptyOp::create(rewriter, loc, denType.getShape(), coeffElt);
      AffineMap id2 = rewriter.getMultiDimIdentityMap(2);
      db = linalg::GenericOp::create(
               rewriter, loc, TypeRange{init.getType()},
               ValueRange{dbTotals, adaptor.getDenominator()}, ValueRange{init},
               ArrayRef<AffineMap>{id2, id2, id2}, {IT::parallel, IT::parallel},
               [&](OpBuilder &b, Location l, ValueRange args) {
                 Value bv = toF32(b, l, args[1]);
                 Value z = f32Constant(b, l, 0.0);
                 Value one = f32Constant(b, l, 1.0);
                 Value sign = math::CopySignOp::create(b, l, one, bv);
                 Value isZero = arith::CmpFOp::create(
                     b, l, arith::CmpFPredicate::OEQ, bv, z);
                 sign = arith::SelectOp::create(b, l, isZero, z, sign);
                 Value r = arith::MulFOp::create(b, l, args[0], sign);
                 if (coeffElt != f32)
                   r = arith::TruncFOp::create(b, l, coeffElt, r);
                 linalg::YieldOp::create(b, l, r);
               })
               .getResult(0);
    }
    rewriter.replaceOp(op, {dx, da, db});
    return success();
  }

  /// `src` (f32) rounded to `elt` when that is narrower.
  static Value mapToType(OpBuilder &b, Location loc, Value src, Type elt) {
    if (elt.isF32())
      return src;
    auto type = cast<RankedTensorType>(src.getType());
    Value init = tensor::EmptyOp::create(b, loc, type.getShape(), elt);
    AffineMap id = b.getMultiDimIdentityMap(2);
    return linalg::GenericOp::create(
               b, loc, TypeRange{init.getType()}, ValueRange{src},
               ValueRange{init}, ArrayRef<AffineMap>{id, id},
               {utils::IteratorType::parallel, utils::IteratorType::parallel},
               [&](OpBuilder &nb, Location l, ValueRange args) {
                 linalg::YieldOp::create(
                     nb, l,
                     arith::TruncFOp::create(nb, l, elt, args[0]).getResult());
               })
        .getResult(0);
  }
};

struct ConvertKANToLinalgPass
    : moka::impl::ConvertKANToLinalgPassBase<ConvertKANToLinalgPass> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    ConversionTarget target(*ctx);
    target.addIllegalDialect<kan::KANDialect>();
    target.addLegalDialect<affine::AffineDialect, arith::ArithDialect,
                           cf::ControlFlowDialect, linalg::LinalgDialect,
                           math::MathDialect, scf::SCFDialect,
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
  patterns.add<RationalOpLowering, RationalGradOpLowering>(
      patterns.getContext());
}
