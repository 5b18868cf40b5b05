//===- BasisBuilders.cpp - Arithmetic of the KAN bases --------------------===//
//
// Emits the scalar arithmetic of the KAN basis functions, shared by the
// lowering of the `kan` ops and by their tiled implementations.
//
//===----------------------------------------------------------------------===//

#include "moka/Dialect/KAN/Transforms/Transforms.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;
using namespace moka::kan;

static Value f32Const(OpBuilder &b, Location loc, double v) {
  return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
}

Value moka::kan::buildRational(OpBuilder &b, Location loc, Value x,
                               ValueRange num, ValueRange absDen) {
  // Horner's rule, highest coefficient first.
  Value p = num.back();
  for (int64_t i = static_cast<int64_t>(num.size()) - 2; i >= 0; --i)
    p = math::FmaOp::create(b, loc, p, x, num[i]);
  if (absDen.empty())
    return p;
  Value a = math::AbsFOp::create(b, loc, x);
  Value q = absDen.back();
  for (int64_t j = static_cast<int64_t>(absDen.size()) - 2; j >= 0; --j)
    q = math::FmaOp::create(b, loc, q, a, absDen[j]);
  Value one = arith::ConstantOp::create(b, loc, b.getOneAttr(x.getType()));
  q = math::FmaOp::create(b, loc, q, a, one);
  return arith::DivFOp::create(b, loc, p, q);
}

BasisParams BasisParams::get(LayerOp op) {
  return {op.getBasis(),
          op.getEffectiveGridSize(),
          op.getEffectiveOrder(),
          op.getEffectiveDegree(),
          op.getNumBasisFunctions(),
          op.getEffectiveGridMin(),
          op.getEffectiveGridMax()};
}

Value moka::kan::buildSiLU(OpBuilder &b, Location loc, Value x) {
  Value neg = arith::NegFOp::create(b, loc, x);
  Value e = math::ExpOp::create(b, loc, neg);
  Value den = arith::AddFOp::create(b, loc, e, f32Const(b, loc, 1.0));
  return arith::DivFOp::create(b, loc, x, den);
}

/// `k` (an index) plus `shift`, as f32.
static Value indexToF32(OpBuilder &b, Location loc, Value k, int64_t shift) {
  Value i = arith::IndexCastOp::create(b, loc, b.getI32Type(), k);
  if (shift != 0) {
    Value s = arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(shift));
    i = arith::AddIOp::create(b, loc, i, s);
  }
  return arith::SIToFPOp::create(b, loc, b.getF32Type(), i);
}

/// B-spline number `k` of order `p` on the uniform knots
/// `t_j = lo + (j - p) h`, by the Cox-de Boor recursion written for the
/// cardinal spline: with `u = (x - t_k) / h`, the order-0 pieces are the
/// indicators of `t_{k+s} <= x < t_{k+s+1}` and each order `q` combines
/// neighbours as `((u - s) d_s + (s + q + 1 - u) d_{s+1}) / q`.
static Value buildBSpline(OpBuilder &b, Location loc, const BasisParams &bp,
                          Value x, Value k) {
  int64_t p = bp.order;
  double h = (bp.gridMax - bp.gridMin) / static_cast<double>(bp.gridSize);
  Value hv = f32Const(b, loc, h);
  Value lo = f32Const(b, loc, bp.gridMin);
  Value zero = f32Const(b, loc, 0.0);
  Value one = f32Const(b, loc, 1.0);
  // Knots as efficient-kan computes them: index * h + lo in f32.
  auto knot = [&](int64_t s) {
    Value j = indexToF32(b, loc, k, s - p);
    return arith::AddFOp::create(b, loc, arith::MulFOp::create(b, loc, j, hv),
                                 lo);
  };
  SmallVector<Value> d;
  Value prev = knot(0);
  Value tk = prev;
  for (int64_t s = 0; s <= p; ++s) {
    Value next = knot(s + 1);
    Value ge =
        arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGE, x, prev);
    Value lt =
        arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OLT, x, next);
    Value in = arith::AndIOp::create(b, loc, ge, lt);
    d.push_back(arith::SelectOp::create(b, loc, in, one, zero));
    prev = next;
  }
  if (p == 0)
    return d[0];
  Value u =
      arith::DivFOp::create(b, loc, arith::SubFOp::create(b, loc, x, tk), hv);
  for (int64_t q = 1; q <= p; ++q) {
    Value invQ = f32Const(b, loc, 1.0 / static_cast<double>(q));
    for (int64_t s = 0; s + q <= p; ++s) {
      Value left = arith::MulFOp::create(
          b, loc, arith::SubFOp::create(b, loc, u, f32Const(b, loc, s)), d[s]);
      Value right = arith::MulFOp::create(
          b, loc, arith::SubFOp::create(b, loc, f32Const(b, loc, s + q + 1), u),
          d[s + 1]);
      d[s] = arith::MulFOp::create(
          b, loc, arith::AddFOp::create(b, loc, left, right), invQ);
    }
  }
  return d[0];
}

Value moka::kan::buildBasisFunction(OpBuilder &b, Location loc,
                                    const BasisParams &bp, Value x, Value k) {
  switch (bp.basis) {
  case Basis::rational:
    llvm_unreachable("the rational basis has its own op");
  case Basis::bspline:
    return buildBSpline(b, loc, bp, x, k);
  case Basis::rbf: {
    double h = (bp.gridMax - bp.gridMin) / static_cast<double>(bp.gridSize - 1);
    Value c = arith::AddFOp::create(
        b, loc,
        arith::MulFOp::create(b, loc, indexToF32(b, loc, k, 0),
                              f32Const(b, loc, h)),
        f32Const(b, loc, bp.gridMin));
    Value z = arith::DivFOp::create(b, loc, arith::SubFOp::create(b, loc, x, c),
                                    f32Const(b, loc, h));
    Value z2 = arith::MulFOp::create(b, loc, z, z);
    return math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, z2));
  }
  case Basis::chebyshev: {
    // T_k(t) by the three-term recurrence, selected by k; stable for |t| <= 1
    // unlike cos(k acos t).
    Value t = math::TanhOp::create(b, loc, x);
    Value one = f32Const(b, loc, 1.0);
    Value two = f32Const(b, loc, 2.0);
    Value result = one;
    Value tPrev = one, tCur = t;
    for (int64_t j = 1; j <= bp.degree; ++j) {
      Value jIdx = arith::ConstantIndexOp::create(b, loc, j);
      Value isJ =
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, k, jIdx);
      result = arith::SelectOp::create(b, loc, isJ, tCur, result);
      if (j == bp.degree)
        break;
      Value next = arith::SubFOp::create(
          b, loc,
          arith::MulFOp::create(b, loc, arith::MulFOp::create(b, loc, two, t),
                                tCur),
          tPrev);
      tPrev = tCur;
      tCur = next;
    }
    return result;
  }
  case Basis::fourier: {
    // k < F: cos((k + 1) x); otherwise sin((k - F + 1) x).
    Value f = arith::ConstantIndexOp::create(b, loc, bp.gridSize);
    Value isCos =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, k, f);
    Value freqIdx = arith::RemUIOp::create(b, loc, k, f);
    Value freq = indexToF32(b, loc, freqIdx, 1);
    Value arg = arith::MulFOp::create(b, loc, freq, x);
    Value c = math::CosOp::create(b, loc, arg);
    Value s = math::SinOp::create(b, loc, arg);
    return arith::SelectOp::create(b, loc, isCos, c, s);
  }
  }
  llvm_unreachable("unknown basis");
}

void moka::kan::assertSameSize(OpBuilder &b, Location loc, OpFoldResult lhs,
                               OpFoldResult rhs, StringRef message) {
  if (getConstantIntValue(lhs) && getConstantIntValue(rhs))
    return;
  Value l = getValueOrCreateConstantIndexOp(b, loc, lhs);
  Value r = getValueOrCreateConstantIndexOp(b, loc, rhs);
  Value same = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, l, r);
  cf::AssertOp::create(b, loc, same, message);
}
