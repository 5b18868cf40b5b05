//===- KVToLinalg.cpp - Lowering of `kv` to linalg on storage tensors -----===//
//
// A `!kv.cache` value becomes its storage tensors (docs/kv.md) through a 1:N
// type conversion, in function signatures, calls and returns too; `kv`
// operations become linalg, tensor and arith operations on that storage.
//
//===----------------------------------------------------------------------===//

#include "moka/Conversion/Passes.h"
#include "moka/Conversion/Utils/GPUKernelBuilder.h"
#include "moka/Dialect/KV/IR/KVOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Func/Transforms/FuncConversions.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Transforms/DialectConversion.h"

#include <limits>

namespace moka {
#define GEN_PASS_DEF_CONVERTKVTOLINALGPASS
#include "moka/Conversion/Passes.h.inc"
} // namespace moka

using namespace mlir;
using namespace moka;
using kv::CacheType;

namespace {

using utils::IteratorType;
constexpr IteratorType kPar = IteratorType::parallel;
constexpr IteratorType kRed = IteratorType::reduction;

//===----------------------------------------------------------------------===//
// Small builders
//===----------------------------------------------------------------------===//

Value indexConst(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

/// A run-time check that the index values `lhs` and `rhs` are equal.
void checkEqual(OpBuilder &b, Location loc, Value lhs, Value rhs,
                StringRef message) {
  Value same =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, lhs, rhs);
  cf::AssertOp::create(b, loc, same, message);
}

Value f32Const(OpBuilder &b, Location loc, double v) {
  return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
}

/// A tensor of `shape` (mixed static and dynamic sizes) filled with `value`.
Value filled(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> shape,
             Value value) {
  Value empty = tensor::EmptyOp::create(b, loc, shape, value.getType());
  return linalg::FillOp::create(b, loc, value, empty).getResult(0);
}

SmallVector<OpFoldResult> mixedSizes(OpBuilder &b, Location loc, Value v) {
  return tensor::getMixedSizes(b, loc, v);
}

/// `v[..., offset : offset + size, ...]` along dimension `dim`.
Value sliceDim(OpBuilder &b, Location loc, Value v, int64_t dim,
               OpFoldResult offset, OpFoldResult size) {
  auto type = cast<RankedTensorType>(v.getType());
  SmallVector<OpFoldResult> offsets(type.getRank(), b.getIndexAttr(0));
  SmallVector<OpFoldResult> sizes = mixedSizes(b, loc, v);
  SmallVector<OpFoldResult> strides(type.getRank(), b.getIndexAttr(1));
  offsets[dim] = offset;
  sizes[dim] = size;
  return tensor::ExtractSliceOp::create(b, loc, v, offsets, sizes, strides);
}

/// Writes `src` into `dest` at `offset` along dimension `dim` (zero
/// elsewhere).
Value insertDim(OpBuilder &b, Location loc, Value src, Value dest, int64_t dim,
                OpFoldResult offset) {
  auto type = cast<RankedTensorType>(src.getType());
  SmallVector<OpFoldResult> offsets(type.getRank(), b.getIndexAttr(0));
  SmallVector<OpFoldResult> strides(type.getRank(), b.getIndexAttr(1));
  offsets[dim] = offset;
  return tensor::InsertSliceOp::create(b, loc, src, dest, offsets,
                                       mixedSizes(b, loc, src), strides);
}

/// An element-wise map of `inputs` (same shape as `init`) into `init`.
Value elementwise(OpBuilder &b, Location loc, ValueRange inputs, Value init,
                  function_ref<Value(OpBuilder &, Location, ValueRange)> fn) {
  int64_t rank = cast<RankedTensorType>(init.getType()).getRank();
  SmallVector<AffineMap> maps(inputs.size() + 1,
                              b.getMultiDimIdentityMap(rank));
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()}, inputs, ValueRange{init}, maps,
             SmallVector<IteratorType>(rank, kPar),
             [&](OpBuilder &nb, Location nloc, ValueRange args) {
               linalg::YieldOp::create(nb, nloc,
                                       fn(nb, nloc, args.drop_back()));
             })
      .getResult(0);
}

/// `v` converted to f32 (a copy only when it is not f32 already).
Value toF32(OpBuilder &b, Location loc, Value v) {
  auto type = cast<RankedTensorType>(v.getType());
  if (type.getElementType().isF32())
    return v;
  Value init =
      tensor::EmptyOp::create(b, loc, mixedSizes(b, loc, v), b.getF32Type());
  return elementwise(
      b, loc, v, init, [](OpBuilder &nb, Location nloc, ValueRange a) {
        return arith::ExtFOp::create(nb, nloc, nb.getF32Type(), a[0])
            .getResult();
      });
}

/// `v` converted to element type `type` (float to float).
Value toElement(OpBuilder &b, Location loc, Value v, Type type) {
  auto src = cast<RankedTensorType>(v.getType());
  if (src.getElementType() == type)
    return v;
  Value init = tensor::EmptyOp::create(b, loc, mixedSizes(b, loc, v), type);
  return elementwise(
      b, loc, v, init, [&](OpBuilder &nb, Location nloc, ValueRange a) {
        if (type.getIntOrFloatBitWidth() <
            a[0].getType().getIntOrFloatBitWidth())
          return arith::TruncFOp::create(nb, nloc, type, a[0]).getResult();
        return arith::ExtFOp::create(nb, nloc, type, a[0]).getResult();
      });
}

/// The length of a cache (its 0-d i64 tensor) as an index, checked at run
/// time to lie in [0, capacity]: the storage may come from a caller.
Value lengthOf(OpBuilder &b, Location loc, Value length, CacheType type) {
  Value n = tensor::ExtractOp::create(b, loc, length, ValueRange{});
  Value zero = arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(0));
  Value capacity = arith::ConstantOp::create(
      b, loc, b.getI64IntegerAttr(type.getCapacity()));
  Value valid = arith::AndIOp::create(
      b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, n, zero),
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sle, n, capacity));
  cf::AssertOp::create(b, loc, valid,
                       "kv: the cache's length is outside [0, capacity] "
                       "(corrupt cache storage)");
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), n);
}

Value lengthTensor(OpBuilder &b, Location loc, Value n) {
  Value v = arith::IndexCastOp::create(b, loc, b.getI64Type(), n);
  return tensor::FromElementsOp::create(
      b, loc, RankedTensorType::get({}, b.getI64Type()), ValueRange{v});
}

/// Tokens in the compressed part of a quantized cache holding `n`:
/// G_t * ceil((n - R) / G_t) when n > R, else 0.
Value compressedCount(OpBuilder &b, Location loc, Value n, CacheType type) {
  Value window = indexConst(b, loc, type.getWindow());
  Value group = indexConst(b, loc, type.getKeyGroup());
  Value zero = indexConst(b, loc, 0);
  Value over = arith::SubIOp::create(b, loc, n, window);
  Value groups = arith::CeilDivSIOp::create(b, loc, over, group);
  Value count = arith::MulIOp::create(b, loc, groups, group);
  Value beyond =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sgt, n, window);
  return arith::SelectOp::create(b, loc, beyond, count, zero);
}

//===----------------------------------------------------------------------===//
// Quantization
//===----------------------------------------------------------------------===//

/// Min and max of `x` over dimension `dim`, dropped from the result.
std::pair<Value, Value> minMax(OpBuilder &b, Location loc, Value x,
                               int64_t dim) {
  auto type = cast<RankedTensorType>(x.getType());
  int64_t rank = type.getRank();
  SmallVector<OpFoldResult> sizes = mixedSizes(b, loc, x);
  sizes.erase(sizes.begin() + dim);
  float inf = std::numeric_limits<float>::infinity();
  Value mnInit = filled(b, loc, sizes, f32Const(b, loc, inf));
  Value mxInit = filled(b, loc, sizes, f32Const(b, loc, -inf));
  SmallVector<AffineExpr> dropped;
  for (int64_t d = 0; d < rank; ++d)
    if (d != dim)
      dropped.push_back(b.getAffineDimExpr(d));
  AffineMap id = b.getMultiDimIdentityMap(rank);
  AffineMap out = AffineMap::get(rank, 0, dropped, b.getContext());
  SmallVector<IteratorType> iterators(rank, kPar);
  iterators[dim] = kRed;
  auto op = linalg::GenericOp::create(
      b, loc, TypeRange{mnInit.getType(), mxInit.getType()}, ValueRange{x},
      ValueRange{mnInit, mxInit}, ArrayRef<AffineMap>{id, out, out}, iterators,
      [](OpBuilder &nb, Location nloc, ValueRange a) {
        linalg::YieldOp::create(
            nb, nloc,
            ValueRange{arith::MinimumFOp::create(nb, nloc, a[0], a[1]),
                       arith::MaximumFOp::create(nb, nloc, a[0], a[2])});
      });
  return {op.getResult(0), op.getResult(1)};
}

/// (max - min) / (2^bits - 1), element-wise.
Value scaleOf(OpBuilder &b, Location loc, Value mn, Value mx, unsigned bits) {
  Value levels = f32Const(b, loc, double((1u << bits) - 1));
  Value init =
      tensor::EmptyOp::create(b, loc, mixedSizes(b, loc, mn), b.getF32Type());
  return elementwise(
      b, loc, ValueRange{mn, mx}, init,
      [&](OpBuilder &nb, Location nloc, ValueRange a) {
        Value range = arith::SubFOp::create(nb, nloc, a[1], a[0]);
        return arith::DivFOp::create(nb, nloc, range, levels).getResult();
      });
}

/// Codes of `x` (rank N) given per-group statistics indexed by `statsMap`:
/// clamp(roundeven((x - min) / scale), 0, 2^bits - 1), 0 where scale == 0,
/// as i8 bit patterns.
Value codesOf(OpBuilder &b, Location loc, Value x, Value mn, Value scale,
              AffineMap statsMap, unsigned bits) {
  auto type = cast<RankedTensorType>(x.getType());
  int64_t rank = type.getRank();
  Value init =
      tensor::EmptyOp::create(b, loc, mixedSizes(b, loc, x), b.getI8Type());
  AffineMap id = b.getMultiDimIdentityMap(rank);
  Value zero = f32Const(b, loc, 0.0);
  Value top = f32Const(b, loc, double((1u << bits) - 1));
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()}, ValueRange{x, mn, scale},
             ValueRange{init}, ArrayRef<AffineMap>{id, statsMap, statsMap, id},
             SmallVector<IteratorType>(rank, kPar),
             [&](OpBuilder &nb, Location nloc, ValueRange a) {
               Value shifted = arith::SubFOp::create(nb, nloc, a[0], a[1]);
               Value ratio = arith::DivFOp::create(nb, nloc, shifted, a[2]);
               Value rounded = math::RoundEvenOp::create(nb, nloc, ratio);
               // maxnum/minnum: a NaN ratio (a NaN or an infinity in the
               // group) becomes code 0, never an out-of-range bit pattern
               // that would spill into the neighbours' bits when packed.
               Value clamped = arith::MinNumFOp::create(
                   nb, nloc, arith::MaxNumFOp::create(nb, nloc, rounded, zero),
                   top);
               Value flat = arith::CmpFOp::create(
                   nb, nloc, arith::CmpFPredicate::OEQ, a[2], zero);
               Value q = arith::SelectOp::create(nb, nloc, flat, zero, clamped);
               Value wide =
                   arith::FPToUIOp::create(nb, nloc, nb.getI32Type(), q);
               linalg::YieldOp::create(
                   nb, nloc,
                   arith::TruncIOp::create(nb, nloc, nb.getI8Type(), wide)
                       .getResult());
             })
      .getResult(0);
}

/// Packs the codes `[..., D]` (i8, values < 2^bits) into `[..., D*bits/8]`:
/// channel d at bit (d*bits) % 8 of byte d*bits/8.
Value pack(OpBuilder &b, Location loc, Value codes, unsigned bits) {
  if (bits == 8)
    return codes;
  auto type = cast<RankedTensorType>(codes.getType());
  int64_t rank = type.getRank();
  int64_t perByte = 8 / bits;
  int64_t d = type.getDimSize(rank - 1);
  SmallVector<OpFoldResult> sizes = mixedSizes(b, loc, codes);
  SmallVector<OpFoldResult> split(sizes.begin(), sizes.end() - 1);
  split.push_back(b.getIndexAttr(d / perByte));
  split.push_back(b.getIndexAttr(perByte));
  SmallVector<ReassociationIndices> reassociation;
  for (int64_t i = 0; i < rank - 1; ++i)
    reassociation.push_back({i});
  reassociation.push_back({rank - 1, rank});
  SmallVector<int64_t> splitShape(type.getShape().drop_back());
  splitShape.push_back(d / perByte);
  splitShape.push_back(perByte);
  Value grouped = tensor::ExpandShapeOp::create(
      b, loc, RankedTensorType::get(splitShape, b.getI8Type()), codes,
      reassociation, split);
  SmallVector<OpFoldResult> outSizes(split.begin(), split.end() - 1);
  Value init = filled(b, loc, outSizes,
                      arith::ConstantOp::create(b, loc, b.getI8IntegerAttr(0)));
  AffineMap id = b.getMultiDimIdentityMap(rank + 1);
  AffineMap out = id.dropResult(rank);
  SmallVector<IteratorType> iterators(rank + 1, kPar);
  iterators[rank] = kRed;
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()}, ValueRange{grouped},
             ValueRange{init}, ArrayRef<AffineMap>{id, out}, iterators,
             [&](OpBuilder &nb, Location nloc, ValueRange a) {
               // The bits are disjoint: adding is or-ing.
               Value lane = linalg::IndexOp::create(nb, nloc, rank);
               Value shift = arith::MulIOp::create(
                   nb, nloc,
                   arith::IndexCastOp::create(nb, nloc, nb.getI8Type(), lane),
                   arith::ConstantOp::create(nb, nloc,
                                             nb.getI8IntegerAttr(bits)));
               Value placed = arith::ShLIOp::create(nb, nloc, a[0], shift);
               linalg::YieldOp::create(
                   nb, nloc,
                   arith::AddIOp::create(nb, nloc, a[1], placed).getResult());
             })
      .getResult(0);
}

/// Dequantizes a code read from a packed byte: the code of channel `d`
/// (an index) from `byte`, times `scale` plus `mn`.
Value dequantize(OpBuilder &b, Location loc, Value byte, Value d, Value scale,
                 Value mn, unsigned bits) {
  Value wide = arith::ExtUIOp::create(b, loc, b.getI32Type(), byte);
  if (bits != 8) {
    int64_t perByte = 8 / bits;
    Value lane = arith::RemUIOp::create(b, loc, d, indexConst(b, loc, perByte));
    Value shift = arith::MulIOp::create(
        b, loc, arith::IndexCastOp::create(b, loc, b.getI32Type(), lane),
        arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(bits)));
    Value shifted = arith::ShRUIOp::create(b, loc, wide, shift);
    wide = arith::AndIOp::create(
        b, loc, shifted,
        arith::ConstantOp::create(b, loc,
                                  b.getI32IntegerAttr((1 << bits) - 1)));
  }
  Value code = arith::UIToFPOp::create(b, loc, b.getF32Type(), wide);
  return arith::AddFOp::create(b, loc,
                               arith::MulFOp::create(b, loc, code, scale), mn);
}

//===----------------------------------------------------------------------===//
// Attention pieces
//===----------------------------------------------------------------------===//

/// The grouped query `[B, H_kv, g, D]` of `q[B, H_q, D]`.
Value groupQuery(OpBuilder &b, Location loc, Value q, int64_t kvHeads) {
  auto type = cast<RankedTensorType>(q.getType());
  int64_t hq = type.getDimSize(1);
  SmallVector<int64_t> shape = {type.getDimSize(0), kvHeads, hq / kvHeads,
                                type.getDimSize(2)};
  return tensor::ExpandShapeOp::create(
      b, loc, RankedTensorType::get(shape, type.getElementType()), q,
      SmallVector<ReassociationIndices>{{0}, {1, 2}, {3}});
}

/// `acc += lhs * rhs` over five loops, the last a reduction, with `lhs` and
/// `rhs` read through `lhsMap`, `rhsMap` (results `[0, 1, 2, 3]` of the
/// loops for `acc`) and converted to f32 where they are not.
Value multiplyAccumulate(
    OpBuilder &b, Location loc, Value lhs, Value rhs, Value acc,
    ArrayRef<AffineExpr> lhsMap, ArrayRef<AffineExpr> rhsMap,
    function_ref<Value(OpBuilder &, Location)> skip = nullptr) {
  MLIRContext *ctx = b.getContext();
  auto map = [&](ArrayRef<AffineExpr> r) {
    return AffineMap::get(5, 0, r, ctx);
  };
  AffineMap out = map({b.getAffineDimExpr(0), b.getAffineDimExpr(1),
                       b.getAffineDimExpr(2), b.getAffineDimExpr(3)});
  return linalg::GenericOp::create(
             b, loc, TypeRange{acc.getType()}, ValueRange{lhs, rhs},
             ValueRange{acc},
             ArrayRef<AffineMap>{map(lhsMap), map(rhsMap), out},
             ArrayRef<IteratorType>{kPar, kPar, kPar, kPar, kRed},
             [&](OpBuilder &nb, Location nloc, ValueRange a) {
               SmallVector<Value> x(a.take_front(2));
               for (Value &v : x)
                 if (!v.getType().isF32())
                   v = arith::ExtFOp::create(nb, nloc, nb.getF32Type(), v);
               Value prod = arith::MulFOp::create(nb, nloc, x[0], x[1]);
               Value sum = arith::AddFOp::create(nb, nloc, a[2], prod);
               // A skipped term is left out, not multiplied by 0: 0 * NaN
               // would still reach the sum.
               if (skip)
                 sum = arith::SelectOp::create(nb, nloc, skip(nb, nloc), a[2],
                                               sum);
               linalg::YieldOp::create(nb, nloc, sum);
             })
      .getResult(0);
}

/// Scores `s[b, h, i, t] = scale * sum_d q[b, h, i, d] * k[b, h, t, d]` over
/// float keys `k[B, H, n, D]`.
Value floatScores(OpBuilder &b, Location loc, Value q4, Value keys,
                  double scale) {
  SmallVector<OpFoldResult> shape = mixedSizes(b, loc, q4);
  shape[3] = tensor::getMixedSize(b, loc, keys, 2);
  Value init = filled(b, loc, shape, f32Const(b, loc, 0.0));
  AffineExpr bb, h, i, t, d;
  bindDims(b.getContext(), bb, h, i, t, d);
  Value s =
      multiplyAccumulate(b, loc, q4, keys, init, {bb, h, i, d}, {bb, h, t, d});
  Value factor = f32Const(b, loc, scale);
  return elementwise(
      b, loc, s, s, [&](OpBuilder &nb, Location nloc, ValueRange a) {
        return arith::MulFOp::create(nb, nloc, a[0], factor).getResult();
      });
}

/// Scores over quantized keys: codes `[B, H, n, P]`, statistics
/// `[B, H, n / G_t, D]`, dequantized as they are read.
Value quantizedScores(OpBuilder &b, Location loc, Value q4, Value codes,
                      Value kscale, Value kmin, CacheType type, double scale,
                      Value n) {
  auto qt = cast<RankedTensorType>(q4.getType());
  SmallVector<OpFoldResult> shape = {
      b.getIndexAttr(qt.getDimSize(0)), b.getIndexAttr(qt.getDimSize(1)),
      b.getIndexAttr(qt.getDimSize(2)), OpFoldResult(n)};
  Value init = filled(b, loc, shape, f32Const(b, loc, 0.0));
  MLIRContext *ctx = b.getContext();
  unsigned bits = type.getBits();
  int64_t perByte = 8 / bits;
  AffineExpr bb, h, i, t, d;
  bindDims(ctx, bb, h, i, t, d);
  auto map = [&](ArrayRef<AffineExpr> r) {
    return AffineMap::get(5, 0, r, ctx);
  };
  int64_t g = type.getKeyGroup();
  Value s =
      linalg::GenericOp::create(
          b, loc, TypeRange{init.getType()},
          ValueRange{q4, codes, kscale, kmin}, ValueRange{init},
          ArrayRef<AffineMap>{
              map({bb, h, i, d}), map({bb, h, t, d.floorDiv(perByte)}),
              map({bb, h, t.floorDiv(g), d}), map({bb, h, t.floorDiv(g), d}),
              map({bb, h, i, t})},
          ArrayRef<IteratorType>{kPar, kPar, kPar, kPar, kRed},
          [&](OpBuilder &nb, Location nloc, ValueRange a) {
            Value dIndex = linalg::IndexOp::create(nb, nloc, 4);
            Value k = dequantize(nb, nloc, a[1], dIndex, a[2], a[3], bits);
            Value p = arith::MulFOp::create(nb, nloc, a[0], k);
            linalg::YieldOp::create(
                nb, nloc, arith::AddFOp::create(nb, nloc, a[4], p).getResult());
          })
          .getResult(0);
  Value factor = f32Const(b, loc, scale);
  return elementwise(
      b, loc, s, s, [&](OpBuilder &nb, Location nloc, ValueRange a) {
        return arith::MulFOp::create(nb, nloc, a[0], factor).getResult();
      });
}

/// The maximum (or sum) of 4-D `x` over dimension `dim`, which the result
/// drops.
Value reduceDim(OpBuilder &b, Location loc, Value x, int64_t dim, bool max) {
  SmallVector<OpFoldResult> shape = mixedSizes(b, loc, x);
  shape.erase(shape.begin() + dim);
  float inf = std::numeric_limits<float>::infinity();
  Value init = filled(b, loc, shape, f32Const(b, loc, max ? -inf : 0.0));
  AffineMap id = b.getMultiDimIdentityMap(4);
  SmallVector<IteratorType> iterators(4, kPar);
  iterators[dim] = kRed;
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()}, ValueRange{x}, ValueRange{init},
             ArrayRef<AffineMap>{id, id.dropResult(dim)}, iterators,
             [&](OpBuilder &nb, Location nloc, ValueRange a) {
               Value r = max ? arith::MaximumFOp::create(nb, nloc, a[0], a[1])
                                   .getResult()
                             : arith::AddFOp::create(nb, nloc, a[0], a[1])
                                   .getResult();
               linalg::YieldOp::create(nb, nloc, r);
             })
      .getResult(0);
}

/// The maximum to subtract in a softmax: `m`, or 0 where `m` is -inf (no
/// finite score), so that the weights come out 0 rather than
/// e^(-inf - -inf) = NaN.
Value finiteMaximum(OpBuilder &b, Location loc, Value m) {
  float inf = std::numeric_limits<float>::infinity();
  Value none = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, m,
                                     f32Const(b, loc, -inf));
  return arith::SelectOp::create(b, loc, none, f32Const(b, loc, 0.0), m);
}

/// `e^(x - m)` for 4-D `x`, with `m` (`x` without dimension `dim`)
/// broadcast along `dim`; 0 where `m` is -inf.
Value expDifference(OpBuilder &b, Location loc, Value x, Value m, int64_t dim) {
  Value init =
      tensor::EmptyOp::create(b, loc, mixedSizes(b, loc, x), b.getF32Type());
  AffineMap id = b.getMultiDimIdentityMap(4);
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()}, ValueRange{x, m},
             ValueRange{init}, ArrayRef<AffineMap>{id, id.dropResult(dim), id},
             SmallVector<IteratorType>(4, kPar),
             [](OpBuilder &nb, Location nloc, ValueRange a) {
               Value d = arith::SubFOp::create(nb, nloc, a[0],
                                               finiteMaximum(nb, nloc, a[1]));
               linalg::YieldOp::create(
                   nb, nloc, math::ExpOp::create(nb, nloc, d).getResult());
             })
      .getResult(0);
}

/// Softmax weights of scores `s[B, H, g, n]`: `p = exp(s - max)` per row,
/// with their row sum in `sum`.
Value softmaxWeights(OpBuilder &b, Location loc, Value s, Value &sum) {
  Value p = expDifference(b, loc, s, reduceDim(b, loc, s, 3, /*max=*/true), 3);
  sum = reduceDim(b, loc, p, 3, /*max=*/false);
  return p;
}

/// `acc[b, h, i, d] += sum_t p[b, h, i, t] * v[b, h, t, d]` over float
/// values; with `causalTokens` T, only over t <= i mod T.
Value floatWeightedSum(OpBuilder &b, Location loc, Value p, Value values,
                       Value acc, Value causalTokens = nullptr) {
  AffineExpr bb, h, i, d, t;
  bindDims(b.getContext(), bb, h, i, d, t);
  auto future = [&](OpBuilder &nb, Location nloc) -> Value {
    Value row = linalg::IndexOp::create(nb, nloc, 2);
    Value token = linalg::IndexOp::create(nb, nloc, 4);
    Value query = arith::RemUIOp::create(nb, nloc, row, causalTokens);
    return arith::CmpIOp::create(nb, nloc, arith::CmpIPredicate::ugt, token,
                                 query);
  };
  return multiplyAccumulate(
      b, loc, p, values, acc, {bb, h, i, t}, {bb, h, t, d},
      causalTokens ? function_ref<Value(OpBuilder &, Location)>(future)
                   : nullptr);
}

/// The same over quantized values: codes `[B, H, n, P]`, statistics
/// `[B, H, n, D / G_c]`.
Value quantizedWeightedSum(OpBuilder &b, Location loc, Value p, Value codes,
                           Value vscale, Value vmin, CacheType type,
                           Value acc) {
  MLIRContext *ctx = b.getContext();
  unsigned bits = type.getBits();
  int64_t perByte = 8 / bits;
  int64_t gc = type.getValueGroup();
  AffineExpr bb, h, i, d, t;
  bindDims(ctx, bb, h, i, d, t);
  auto map = [&](ArrayRef<AffineExpr> r) {
    return AffineMap::get(5, 0, r, ctx);
  };
  return linalg::GenericOp::create(
             b, loc, TypeRange{acc.getType()},
             ValueRange{p, codes, vscale, vmin}, ValueRange{acc},
             ArrayRef<AffineMap>{
                 map({bb, h, i, t}), map({bb, h, t, d.floorDiv(perByte)}),
                 map({bb, h, t, d.floorDiv(gc)}),
                 map({bb, h, t, d.floorDiv(gc)}), map({bb, h, i, d})},
             ArrayRef<IteratorType>{kPar, kPar, kPar, kPar, kRed},
             [&](OpBuilder &nb, Location nloc, ValueRange a) {
               Value dIndex = linalg::IndexOp::create(nb, nloc, 3);
               Value v = dequantize(nb, nloc, a[1], dIndex, a[2], a[3], bits);
               Value prod = arith::MulFOp::create(nb, nloc, a[0], v);
               linalg::YieldOp::create(
                   nb, nloc,
                   arith::AddFOp::create(nb, nloc, a[4], prod).getResult());
             })
      .getResult(0);
}

/// `acc / l`, and 0 where no token contributed (l == 0); a NaN sum stays
/// NaN.
Value normalize(OpBuilder &b, Location loc, Value acc, Value l) {
  MLIRContext *ctx = b.getContext();
  AffineMap id = b.getMultiDimIdentityMap(4);
  AffineMap row = AffineMap::get(
      4, 0,
      {b.getAffineDimExpr(0), b.getAffineDimExpr(1), b.getAffineDimExpr(2)},
      ctx);
  Value zero = f32Const(b, loc, 0.0);
  return linalg::GenericOp::create(
             b, loc, TypeRange{acc.getType()}, ValueRange{l}, ValueRange{acc},
             ArrayRef<AffineMap>{row, id}, SmallVector<IteratorType>(4, kPar),
             [&](OpBuilder &nb, Location nloc, ValueRange a) {
               Value q = arith::DivFOp::create(nb, nloc, a[1], a[0]);
               Value any = arith::CmpFOp::create(
                   nb, nloc, arith::CmpFPredicate::UNE, a[0], zero);
               linalg::YieldOp::create(
                   nb, nloc,
                   arith::SelectOp::create(nb, nloc, any, q, zero).getResult());
             })
      .getResult(0);
}

/// Attention of `q4[B, H, g, D]` over float keys and values `[B, H, n, D]`.
Value floatAttention(OpBuilder &b, Location loc, Value q4, Value keys,
                     Value values, double scale) {
  Value s = floatScores(b, loc, q4, keys, scale);
  Value l;
  Value p = softmaxWeights(b, loc, s, l);
  Value acc = filled(b, loc, mixedSizes(b, loc, q4), f32Const(b, loc, 0.0));
  acc = floatWeightedSum(b, loc, p, values, acc);
  return normalize(b, loc, acc, l);
}

//===----------------------------------------------------------------------===//
// CPU kernel of decode attention
//===----------------------------------------------------------------------===//

/// Decode attention as explicit vector code (float caches: the "window"
/// path over all tokens) for one chunk of tokens of one (sequence,
/// key/value head): codes are unpacked into bit planes (channels
/// `p * E + e` for plane `e`, `E` codes per byte) and converted in
/// registers; the query is scaled by each key group's per-channel scales
/// once per group (`q ks`, in the same planes) so that a score is
/// `sum_e plane_e . (q ks)_e + q . kmin`; each value plane is dequantized
/// once per token and accumulated per query head. Scores of the chunk are
/// a `g x chunk` tensor; the chunk's softmax maximum and sum are returned
/// with its unnormalized output for the exact merge of the chunks.
struct DecodeKernel {
  /// Sums may be reassociated: a tree of vector adds, not a chain of 64.
  static constexpr arith::FastMathFlags kReassoc =
      arith::FastMathFlags::reassoc | arith::FastMathFlags::contract;

  OpBuilder &b;
  Location loc;
  CacheType type;
  int64_t g; // query heads per key/value head
  bool quantized = type.isQuantized();
  unsigned bits = quantized ? type.getBits() : 8;
  int64_t d = type.getHeadSize();
  int64_t e = 8 / bits;     // codes per byte, planes
  int64_t p = d * bits / 8; // bytes per row, lanes per plane
  // Full-precision keys and values: the window, or a float cache's all.
  unsigned windowKeyIndex = quantized ? 6 : 0;
  unsigned windowValueIndex = quantized ? 7 : 1;
  VectorType vD = VectorType::get({d}, b.getF32Type());
  VectorType vP = VectorType::get({p}, b.getF32Type());

  /// A row of `tensor` (any float type) as a vector<D x f32>.
  Value readRow(Value tensor, ValueRange indices) {
    Type elt = cast<RankedTensorType>(tensor.getType()).getElementType();
    Value v = read(tensor, indices, VectorType::get({d}, elt));
    if (!elt.isF32())
      v = arith::ExtFOp::create(b, loc, vD, v);
    return v;
  }

  Value read(Value tensor, ValueRange indices, VectorType vt) {
    Value pad =
        arith::ConstantOp::create(b, loc, b.getZeroAttr(vt.getElementType()));
    return vector::TransferReadOp::create(b, loc, vt, tensor, indices, pad,
                                          ArrayRef<bool>{true});
  }

  /// Plane `k` of a channel-ordered vector: lanes k, k + E, k + 2E, ...
  Value plane(Value v, int64_t k) {
    if (e == 1)
      return v;
    SmallVector<int64_t> mask;
    for (int64_t i = 0; i < p; ++i)
      mask.push_back(i * e + k);
    return vector::ShuffleOp::create(b, loc, v, v, mask);
  }

  /// The channel-ordered vector of planes `planes`.
  Value interleave(ArrayRef<Value> planes) {
    SmallVector<Value> level(planes.begin(), planes.end());
    int64_t width = p;
    // Pairwise: (a, b) -> a0 b0 a1 b1 ... in chunks of `chunk` lanes.
    for (int64_t chunk = 1; level.size() > 1; chunk *= 2) {
      SmallVector<Value> next;
      for (size_t k = 0; k < level.size(); k += 2) {
        SmallVector<int64_t> mask;
        for (int64_t c = 0; c < width / chunk; ++c)
          for (int64_t side = 0; side < 2; ++side)
            for (int64_t l = 0; l < chunk; ++l)
              mask.push_back(side * width + c * chunk + l);
        next.push_back(
            vector::ShuffleOp::create(b, loc, level[k], level[k + 1], mask));
      }
      level = next;
      width *= 2;
    }
    return level.front();
  }

  /// The code planes of one packed row, as f32 vectors.
  SmallVector<Value> planesOf(Value bytes) {
    auto vi = VectorType::get({p}, b.getI32Type());
    Value wide = arith::ExtUIOp::create(b, loc, vi, bytes);
    SmallVector<Value> planes;
    for (int64_t k = 0; k < e; ++k) {
      Value x = wide;
      if (bits != 8) {
        Value shift = arith::ConstantOp::create(
            b, loc,
            DenseElementsAttr::get(vi,
                                   b.getI32IntegerAttr(k * bits).getValue()));
        Value mask = arith::ConstantOp::create(
            b, loc,
            DenseElementsAttr::get(
                vi, b.getI32IntegerAttr((1 << bits) - 1).getValue()));
        x = arith::AndIOp::create(
            b, loc, arith::ShRUIOp::create(b, loc, wide, shift), mask);
      }
      planes.push_back(arith::UIToFPOp::create(b, loc, vP, x));
    }
    return planes;
  }

  Value dot(Value x, Value y) { return treeDot({x}, {y}); }

  /// sum_k x_k . y_k over vectors of one length, as a balanced tree: per
  /// 16-lane part (the whole vector when 16 does not divide its length),
  /// the products of the planes in one multiply-add chain; the parts added
  /// pairwise (no reassociation flags: LLVM would make a chain of them
  /// again), then one reduction. A token's score
  /// is a latency chain; the tree shortens it from one multiply-add per part
  /// and plane to about log2 of the parts.
  Value treeDot(ArrayRef<Value> xs, ArrayRef<Value> ys) {
    int64_t len = cast<VectorType>(xs.front().getType()).getDimSize(0);
    int64_t part = len % 16 == 0 ? 16 : len;
    SmallVector<Value> parts;
    for (int64_t off = 0; off < len; off += part) {
      auto slice = [&](Value v) -> Value {
        if (part == len)
          return v;
        return vector::ExtractStridedSliceOp::create(
            b, loc, v, ArrayRef<int64_t>{off}, ArrayRef<int64_t>{part},
            ArrayRef<int64_t>{1});
      };
      Value acc;
      for (auto [x, y] : llvm::zip_equal(xs, ys))
        acc =
            acc ? math::FmaOp::create(b, loc, slice(x), slice(y), acc)
                      .getResult()
                : arith::MulFOp::create(b, loc, slice(x), slice(y)).getResult();
      parts.push_back(acc);
    }
    while (parts.size() > 1) {
      SmallVector<Value> next;
      for (size_t i = 0; i + 1 < parts.size(); i += 2)
        next.push_back(arith::AddFOp::create(b, loc, parts[i], parts[i + 1]));
      if (parts.size() % 2)
        next.push_back(parts.back());
      parts = std::move(next);
    }
    return vector::ReductionOp::create(b, loc, vector::CombiningKind::ADD,
                                       parts.front(), kReassoc);
  }

  Value idx(int64_t v) { return indexConst(b, loc, v); }

  /// The attention output `[g, D]` for sequence `bi`, head `hi`.
  /// Tokens `[lo, hiTok)` of sequence `bi`, head `hi`: the unnormalized
  /// output rows `[g, D]`, with each row's score maximum and softmax sum
  /// (`[g]` each), to be merged with the other chunks.
  struct Partial {
    Value out, max, sum;
  };
  Partial build(Value q4, ArrayRef<Value> storage, Value nc, Value lo,
                Value hiTok, Value bi, Value hi, double scale) {
    Value zero = idx(0), one = idx(1);
    Value gt = idx(type.getKeyGroup());
    Value scaleV =
        vector::BroadcastOp::create(b, loc, vD, f32Const(b, loc, scale));
    SmallVector<Value> q;
    for (int64_t i = 0; i < g; ++i)
      q.push_back(arith::MulFOp::create(
          b, loc, read(q4, {bi, hi, idx(i), zero}, vD), scaleV));

    // Scores of the chunk (index t - lo): compressed tokens [lo, cHi),
    // window tokens [wLo, wHi) (window positions).
    Value len = arith::SubIOp::create(b, loc, hiTok, lo);
    Value cHi = arith::MinSIOp::create(b, loc, hiTok, nc);
    Value wLo = arith::SubIOp::create(
        b, loc, arith::MaxSIOp::create(b, loc, lo, nc), nc);
    Value wHi = arith::SubIOp::create(b, loc, hiTok, nc);
    Value scores = tensor::EmptyOp::create(
        b, loc, ArrayRef<OpFoldResult>{b.getIndexAttr(g), OpFoldResult(len)},
        b.getF32Type());
    if (quantized) {
      auto keyLoop = scf::ForOp::create(
          b, loc, arith::DivUIOp::create(b, loc, lo, gt),
          arith::DivUIOp::create(b, loc, cHi, gt), one, ValueRange{scores},
          [&](OpBuilder &, Location, Value j, ValueRange args) {
            Value ks = read(storage[1], {bi, hi, j, zero}, vD);
            Value km = read(storage[2], {bi, hi, j, zero}, vD);
            SmallVector<SmallVector<Value>> qs(g);
            SmallVector<Value> bias;
            for (int64_t i = 0; i < g; ++i) {
              Value scaled = arith::MulFOp::create(b, loc, q[i], ks);
              for (int64_t k = 0; k < e; ++k)
                qs[i].push_back(plane(scaled, k));
              bias.push_back(dot(q[i], km));
            }
            Value first = arith::MulIOp::create(b, loc, j, gt);
            auto tokenLoop = scf::ForOp::create(
                b, loc, zero, gt, one, args,
                [&](OpBuilder &, Location, Value tau, ValueRange targs) {
                  Value t = arith::AddIOp::create(b, loc, first, tau);
                  SmallVector<Value> planes =
                      planesOf(read(storage[0], {bi, hi, t, zero},
                                    VectorType::get({p}, b.getI8Type())));
                  Value s = targs[0];
                  for (int64_t i = 0; i < g; ++i) {
                    Value score = arith::AddFOp::create(
                        b, loc, treeDot(planes, qs[i]), bias[i]);
                    s = tensor::InsertOp::create(
                        b, loc, score, s,
                        ValueRange{idx(i),
                                   arith::SubIOp::create(b, loc, t, lo)});
                  }
                  scf::YieldOp::create(b, loc, s);
                });
            scf::YieldOp::create(b, loc, tokenLoop.getResult(0));
          });
      scores = keyLoop.getResult(0);
    }
    auto windowLoop = scf::ForOp::create(
        b, loc, wLo, wHi, one, ValueRange{scores},
        [&](OpBuilder &, Location, Value t, ValueRange args) {
          Value k = readRow(storage[windowKeyIndex], {bi, hi, t, zero});
          Value at = arith::SubIOp::create(
              b, loc, arith::AddIOp::create(b, loc, nc, t), lo);
          Value s = args[0];
          for (int64_t i = 0; i < g; ++i)
            s = tensor::InsertOp::create(b, loc, dot(q[i], k), s,
                                         ValueRange{idx(i), at});
          scf::YieldOp::create(b, loc, s);
        });
    scores = windowLoop.getResult(0);

    // Softmax weights in place, and their sums, 16 scores at a time (the
    // lanes past the chunk read as -inf: weight 0, not written).
    float inf = std::numeric_limits<float>::infinity();
    constexpr int64_t kLanes = 16;
    VectorType vS = VectorType::get({kLanes}, b.getF32Type());
    Value lanes = idx(kLanes);
    Value minusInf = f32Const(b, loc, -inf);
    auto readScores = [&](Value from, Value i, Value t) {
      return vector::TransferReadOp::create(b, loc, vS, from, ValueRange{i, t},
                                            minusInf, ArrayRef<bool>{false});
    };
    SmallVector<Value> sums, maxima;
    for (int64_t i = 0; i < g; ++i) {
      auto maxLoop = scf::ForOp::create(
          b, loc, zero, len, lanes,
          ValueRange{vector::BroadcastOp::create(b, loc, vS, minusInf)},
          [&](OpBuilder &, Location, Value t, ValueRange args) {
            Value s = readScores(scores, idx(i), t);
            scf::YieldOp::create(
                b, loc,
                ValueRange{arith::MaximumFOp::create(b, loc, args[0], s)});
          });
      Value m = vector::ReductionOp::create(
          b, loc, vector::CombiningKind::MAXIMUMF, maxLoop.getResult(0));
      maxima.push_back(m);
      Value mv =
          vector::BroadcastOp::create(b, loc, vS, finiteMaximum(b, loc, m));
      auto expLoop = scf::ForOp::create(
          b, loc, zero, len, lanes,
          ValueRange{scores,
                     arith::ConstantOp::create(b, loc, b.getZeroAttr(vS))},
          [&](OpBuilder &, Location, Value t, ValueRange args) {
            Value s = readScores(args[0], idx(i), t);
            Value pr = math::ExpOp::create(
                b, loc, arith::SubFOp::create(b, loc, s, mv));
            Value updated = vector::TransferWriteOp::create(
                                b, loc, pr, args[0], ValueRange{idx(i), t},
                                ArrayRef<bool>{false})
                                .getResult();
            scf::YieldOp::create(b, loc,
                                 ValueRange{updated, arith::AddFOp::create(
                                                         b, loc, args[1], pr)});
          });
      scores = expLoop.getResult(0);
      sums.push_back(vector::ReductionOp::create(
          b, loc, vector::CombiningKind::ADD, expLoop.getResult(1), kReassoc));
    }

    // Weighted sums of values.
    int64_t valueGroup = quantized ? type.getValueGroup() : d;
    int64_t vgroups = d / valueGroup;
    VectorType vG = VectorType::get({vgroups}, b.getF32Type());
    // Lane l of plane k holds channel l * E + k, of value group
    // (l * E + k) / G_c.
    SmallVector<SmallVector<int64_t>> groupOfLane(e);
    for (int64_t k = 0; k < e; ++k)
      for (int64_t l = 0; l < p; ++l)
        groupOfLane[k].push_back((l * e + k) / valueGroup);
    SmallVector<Value> init;
    Value zeroP = arith::ConstantOp::create(b, loc, b.getZeroAttr(vP));
    Value zeroD = arith::ConstantOp::create(b, loc, b.getZeroAttr(vD));
    for (int64_t i = 0; i < g; ++i)
      for (int64_t k = 0; k < e; ++k)
        init.push_back(zeroP);
    SmallVector<Value> quantizedSums;
    if (quantized) {
      auto valueLoop = scf::ForOp::create(
          b, loc, lo, cHi, one, init,
          [&](OpBuilder &, Location, Value t, ValueRange args) {
            SmallVector<Value> planes =
                planesOf(read(storage[3], {bi, hi, t, zero},
                              VectorType::get({p}, b.getI8Type())));
            Value vs = read(storage[4], {bi, hi, t, zero}, vG);
            Value vm = read(storage[5], {bi, hi, t, zero}, vG);
            // Each plane dequantized once (scale and minimum of its lanes'
            // value groups), then weighted per query head: no cancellation
            // between separately accumulated minima and scaled codes.
            SmallVector<Value> values;
            for (int64_t k = 0; k < e; ++k)
              values.push_back(math::FmaOp::create(
                  b, loc, planes[k],
                  vector::ShuffleOp::create(b, loc, vs, vs, groupOfLane[k]),
                  vector::ShuffleOp::create(b, loc, vm, vm, groupOfLane[k])));
            SmallVector<Value> next;
            for (int64_t i = 0; i < g; ++i) {
              Value pr = tensor::ExtractOp::create(
                  b, loc, scores,
                  ValueRange{idx(i), arith::SubIOp::create(b, loc, t, lo)});
              Value prP = vector::BroadcastOp::create(b, loc, vP, pr);
              for (int64_t k = 0; k < e; ++k)
                next.push_back(math::FmaOp::create(b, loc, prP, values[k],
                                                   args[i * e + k]));
            }
            scf::YieldOp::create(b, loc, next);
          });
      quantizedSums = valueLoop.getResults();
    }
    auto windowValues = scf::ForOp::create(
        b, loc, wLo, wHi, one, SmallVector<Value>(g, zeroD),
        [&](OpBuilder &, Location, Value t, ValueRange args) {
          Value v = readRow(storage[windowValueIndex], {bi, hi, t, zero});
          Value at = arith::SubIOp::create(
              b, loc, arith::AddIOp::create(b, loc, nc, t), lo);
          SmallVector<Value> next;
          for (int64_t i = 0; i < g; ++i) {
            Value pr = tensor::ExtractOp::create(b, loc, scores,
                                                 ValueRange{idx(i), at});
            Value prD = vector::BroadcastOp::create(b, loc, vD, pr);
            next.push_back(math::FmaOp::create(b, loc, prD, v, args[i]));
          }
          scf::YieldOp::create(b, loc, next);
        });

    // Unnormalized rows: the value planes interleaved, plus the window.
    Value out = tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{g, d},
                                        b.getF32Type());
    for (int64_t i = 0; i < g; ++i) {
      Value total = windowValues.getResult(i);
      if (quantized) {
        SmallVector<Value> accPlanes;
        for (int64_t k = 0; k < e; ++k)
          accPlanes.push_back(quantizedSums[i * e + k]);
        total = arith::AddFOp::create(b, loc, total, interleave(accPlanes));
      }
      out = vector::TransferWriteOp::create(b, loc, total, out,
                                            ValueRange{idx(i), zero},
                                            ArrayRef<bool>{true})
                .getResult();
    }
    auto rowType = RankedTensorType::get({g}, b.getF32Type());
    Value max = tensor::FromElementsOp::create(b, loc, rowType, maxima);
    Value sum = tensor::FromElementsOp::create(b, loc, rowType, sums);
    return {out, max, sum};
  }
};

/// Tokens per chunk of the sequence split (a multiple of the key group).
int64_t chunkTokens(CacheType type) {
  int64_t group = type.isQuantized() ? type.getKeyGroup() : 1;
  return llvm::divideCeil(512, group) * group;
}

Value mergeChunks(OpBuilder &b, Location loc, Value q4, Value partOuts,
                  Value partMax, Value partSums);

/// `o4[B, H, g, D]`: the kernel above in an scf.forall over (sequence,
/// key/value head, chunk of tokens), then the exact merge of the chunks'
/// partial results: with M the maximum of the chunks' maxima m_c,
/// o = sum_c out_c e^(m_c - M) / sum_c l_c e^(m_c - M).
Value attentionKernel(OpBuilder &b, Location loc, Value q4, ValueRange storage,
                      CacheType type, Value n, double scale) {
  auto qt = cast<RankedTensorType>(q4.getType());
  int64_t bsz = type.getBatch(), h = type.getHeads();
  int64_t g = qt.getDimSize(2), d = qt.getDimSize(3);
  Value nc = type.isQuantized() ? compressedCount(b, loc, n, type)
                                : indexConst(b, loc, 0);
  Value chunk = indexConst(b, loc, chunkTokens(type));
  Value chunks = arith::CeilDivUIOp::create(b, loc, n, chunk);
  Type f32 = b.getF32Type();
  SmallVector<OpFoldResult> partShape = {b.getIndexAttr(bsz), b.getIndexAttr(h),
                                         chunks, b.getIndexAttr(g)};
  SmallVector<OpFoldResult> outShape(partShape);
  outShape.push_back(b.getIndexAttr(d));
  Value outs = tensor::EmptyOp::create(b, loc, outShape, f32);
  Value maxima = tensor::EmptyOp::create(b, loc, partShape, f32);
  Value sums = tensor::EmptyOp::create(b, loc, partShape, f32);
  SmallVector<Value> stored(storage.begin(), storage.end());
  auto forall = scf::ForallOp::create(
      b, loc,
      ArrayRef<OpFoldResult>{b.getIndexAttr(bsz), b.getIndexAttr(h),
                             OpFoldResult(chunks)},
      ValueRange{outs, maxima, sums}, std::nullopt,
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        Value lo = arith::MulIOp::create(nb, nloc, args[2], chunk);
        Value hiTok = arith::MinUIOp::create(
            nb, nloc, arith::AddIOp::create(nb, nloc, lo, chunk), n);
        DecodeKernel kernel{nb, nloc, type, g};
        DecodeKernel::Partial part =
            kernel.build(q4, stored, nc, lo, hiTok, args[0], args[1], scale);
        auto inParallel = scf::InParallelOp::create(nb, nloc);
        OpBuilder::InsertionGuard guard(nb);
        nb.setInsertionPointToStart(inParallel.getBody());
        SmallVector<OpFoldResult> offsets = {args[0], args[1], args[2],
                                             nb.getIndexAttr(0)};
        SmallVector<OpFoldResult> sizes = {
            nb.getIndexAttr(1), nb.getIndexAttr(1), nb.getIndexAttr(1),
            nb.getIndexAttr(g)};
        SmallVector<OpFoldResult> strides(4, nb.getIndexAttr(1));
        tensor::ParallelInsertSliceOp::create(nb, nloc, part.max, args[4],
                                              offsets, sizes, strides);
        tensor::ParallelInsertSliceOp::create(nb, nloc, part.sum, args[5],
                                              offsets, sizes, strides);
        offsets.push_back(nb.getIndexAttr(0));
        sizes.push_back(nb.getIndexAttr(d));
        strides.push_back(nb.getIndexAttr(1));
        tensor::ParallelInsertSliceOp::create(nb, nloc, part.out, args[3],
                                              offsets, sizes, strides);
      });
  return mergeChunks(b, loc, q4, forall.getResult(0), forall.getResult(1),
                     forall.getResult(2));
}

/// The exact merge of chunks' partial results `partOuts[B, H, C, g, D]`,
/// maxima and sums `[B, H, C, g]` into `o4[B, H, g, D]` (`q4`'s shape):
/// with M the maximum of the chunks' maxima m_c,
/// o = sum_c out_c e^(m_c - M) / sum_c l_c e^(m_c - M).
Value mergeChunks(OpBuilder &b, Location loc, Value q4, Value partOuts,
                  Value partMax, Value partSums) {
  auto qt = cast<RankedTensorType>(q4.getType());
  int64_t bsz = qt.getDimSize(0), h = qt.getDimSize(1), g = qt.getDimSize(2);
  MLIRContext *ctx = b.getContext();
  AffineExpr e0, e1, e2, e3, e4;
  bindDims(ctx, e0, e1, e2, e3, e4);
  SmallVector<OpFoldResult> rowShape = {b.getIndexAttr(bsz), b.getIndexAttr(h),
                                        b.getIndexAttr(g)};
  auto map4 = [&](ArrayRef<AffineExpr> r) {
    return AffineMap::get(4, 0, r, ctx);
  };
  SmallVector<IteratorType> overChunks = {kPar, kPar, kRed, kPar};
  Value weights = expDifference(b, loc, partMax,
                                reduceDim(b, loc, partMax, 2, /*max=*/true), 2);
  Value lInit = filled(b, loc, rowShape, f32Const(b, loc, 0.0));
  Value l =
      linalg::GenericOp::create(
          b, loc, TypeRange{lInit.getType()}, ValueRange{partSums, weights},
          ValueRange{lInit},
          ArrayRef<AffineMap>{map4({e0, e1, e2, e3}), map4({e0, e1, e2, e3}),
                              map4({e0, e1, e3})},
          overChunks,
          [](OpBuilder &nb, Location nloc, ValueRange a) {
            Value x = arith::MulFOp::create(nb, nloc, a[0], a[1]);
            linalg::YieldOp::create(
                nb, nloc, arith::AddFOp::create(nb, nloc, a[2], x).getResult());
          })
          .getResult(0);
  Value accInit = filled(b, loc, mixedSizes(b, loc, q4), f32Const(b, loc, 0.0));
  auto map5 = [&](ArrayRef<AffineExpr> r) {
    return AffineMap::get(5, 0, r, ctx);
  };
  Value acc =
      linalg::GenericOp::create(
          b, loc, TypeRange{accInit.getType()}, ValueRange{partOuts, weights},
          ValueRange{accInit},
          ArrayRef<AffineMap>{map5({e0, e1, e2, e3, e4}),
                              map5({e0, e1, e2, e3}), map5({e0, e1, e3, e4})},
          ArrayRef<IteratorType>{kPar, kPar, kRed, kPar, kPar},
          [](OpBuilder &nb, Location nloc, ValueRange a) {
            Value x = arith::MulFOp::create(nb, nloc, a[0], a[1]);
            linalg::YieldOp::create(
                nb, nloc, arith::AddFOp::create(nb, nloc, a[2], x).getResult());
          })
          .getResult(0);
  return normalize(b, loc, acc, l);
}

/// Decode attention for GPUs ("flash decoding") on a float or quantized
/// cache, as loops over blocks and threads (GPUKernelBuilder): one block
/// per (chunk of kChunk tokens, key/value head, sequence), 256 threads;
/// the partial results of the chunks are merged afterwards like the CPU
/// kernel's. In a block:
///   - the query heads of the key/value head, times the scale, are staged
///     in workgroup memory;
///   - per step of 32 tokens, the threads copy the step's keys into
///     workgroup memory, dequantized as they are read (consecutive threads
///     read consecutive channels of a row: coalesced), then each thread
///     computes one (query head, token) score from the staged tiles;
///   - one thread per query head takes the chunk's maximum m, turns the
///     scores into e^(s - m) (0 past the last token) and sums them;
///   - one thread per channel accumulates, for every query head, the
///     weighted values of the chunk, read (and dequantized) once each.
/// Returns null (the caller keeps the generic form) when the tiles would
/// not fit in 48 KB or there are more than 32 query heads per key/value
/// head (accumulators per thread).
struct GPUDecodeKernel {
  static constexpr int64_t kChunk = 256;
  static constexpr int64_t kStep = 32;
  static constexpr int64_t kMaxHeads = 32;
  static constexpr int64_t kMaxTileWords = 48 * 1024 / 4;

  OpBuilder &b;
  Location loc;
  CacheType type;
  GPUKernelBuilder k;

  bool quantized = type.isQuantized();
  unsigned bits = quantized ? type.getBits() : 8;
  int64_t d = type.getHeadSize();

  /// Channel `dd` of row `tok` of keys (`keys` true) or values, as f32:
  /// the compressed part's codes dequantized, or the window's (or a float
  /// cache's) row.
  Value element(ArrayRef<Value> buf, bool keys, Value bb, Value h, Value tok,
                Value dd, Value nc) {
    unsigned window = quantized ? (keys ? 6 : 7) : (keys ? 0 : 1);
    if (!quantized)
      return k.loadF32(buf[window], {bb, h, tok, dd});
    auto ifOp = scf::IfOp::create(b, loc, TypeRange{b.getF32Type()},
                                  k.less(tok, nc), /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    unsigned codes = keys ? 0 : 3;
    Value byte = memref::LoadOp::create(
        b, loc, buf[codes], ValueRange{bb, h, tok, k.divConst(dd, 8 / bits)});
    // Keys: statistics per group of G_t tokens and channel; values: per
    // token and group of G_c channels.
    SmallVector<Value> at =
        keys
            ? SmallVector<Value>{bb, h, k.divConst(tok, type.getKeyGroup()), dd}
            : SmallVector<Value>{bb, h, tok,
                                 k.divConst(dd, type.getValueGroup())};
    Value scale = k.loadF32(buf[codes + 1], at);
    Value mn = k.loadF32(buf[codes + 2], at);
    scf::YieldOp::create(b, loc, dequantize(b, loc, byte, dd, scale, mn, bits));
    b.setInsertionPointToStart(ifOp.elseBlock());
    Value row = arith::SubIOp::create(b, loc, tok, nc);
    scf::YieldOp::create(b, loc, k.loadF32(buf[window], {bb, h, row, dd}));
    return ifOp.getResult(0);
  }

  /// `o4[B, H, g, D]`, or null (see above).
  Value build(Value q4, ValueRange storage, Value n, double scale) {
    auto qt = cast<RankedTensorType>(q4.getType());
    int64_t bsz = type.getBatch(), heads = type.getHeads();
    int64_t g = qt.getDimSize(2);
    int64_t words = g * d + g * kChunk + kStep * (d + 2);
    if (g > kMaxHeads || words > kMaxTileWords)
      return Value();
    int64_t threads = k.threadCount;
    Value nc = quantized ? compressedCount(b, loc, n, type) : k.index(0);
    Value qBuf = k.readBuffer(q4);
    SmallVector<Value> buf;
    for (Value s : storage.drop_back())
      buf.push_back(k.readBuffer(s));

    Value chunks = k.tiles(n, kChunk);
    Type f32 = b.getF32Type();
    int64_t dyn = ShapedType::kDynamic;
    Value outs = memref::AllocOp::create(
        b, loc, MemRefType::get({bsz, heads, dyn, g, d}, f32),
        ValueRange{chunks});
    Value maxima = memref::AllocOp::create(
        b, loc, MemRefType::get({bsz, heads, dyn, g}, f32), ValueRange{chunks});
    Value sums = memref::AllocOp::create(
        b, loc, MemRefType::get({bsz, heads, dyn, g}, f32), ValueRange{chunks});
    {
      OpBuilder::InsertionGuard guard(b);
      SmallVector<Value> ids = k.blocks({chunks, k.index(heads), k.index(bsz)});
      Value c = ids[0], h = ids[1], bb = ids[2];
      Value t0 = k.mul(c, k.index(kChunk));
      Value hi = arith::MinUIOp::create(b, loc, k.add(t0, k.index(kChunk)), n);
      Value qTile = k.tile({g, d});
      Value sTile = k.tile({g, kChunk});
      // A warp reads one channel of 32 keys: an odd line length puts them
      // on 32 distinct banks.
      Value kTile = k.tile({kStep, d % 2 == 0 ? d + 1 : d + 2});
      // Strided loops over `count` items: body(i) for i < count.
      auto forEach = [&](int64_t count, function_ref<void(Value)> body) {
        k.threads([&](Value t) {
          k.repeat(llvm::divideCeil(count, threads), [&](Value r) {
            Value i = k.add(t, k.mul(r, k.index(threads)));
            if (count % threads == 0)
              return body(i);
            k.when(k.less(i, k.index(count)), [&] { body(i); });
          });
        });
      };
      forEach(g * d, [&](Value i) {
        Value gi = k.divConst(i, d), dd = k.remConst(i, d);
        Value v = k.loadF32(qBuf, {bb, h, gi, dd});
        memref::StoreOp::create(b, loc,
                                arith::MulFOp::create(b, loc, v, k.f32(scale)),
                                qTile, ValueRange{gi, dd});
      });
      auto steps = scf::ForOp::create(b, loc, k.index(0), k.index(kChunk),
                                      k.index(kStep));
      {
        OpBuilder::InsertionGuard g2(b);
        b.setInsertionPoint(steps.getBody()->getTerminator());
        Value s0 = k.add(t0, steps.getInductionVar());
        forEach(kStep * d, [&](Value i) {
          Value j = k.divConst(i, d), dd = k.remConst(i, d);
          Value tok = k.add(s0, j);
          Value v = k.loadOrZero(k.less(tok, hi), [&] {
            return element(buf, /*keys=*/true, bb, h, tok, dd, nc);
          });
          memref::StoreOp::create(b, loc, v, kTile, ValueRange{j, dd});
        });
        forEach(g * kStep, [&](Value i) {
          Value gi = k.divConst(i, kStep), j = k.remConst(i, kStep);
          auto dot = scf::ForOp::create(
              b, loc, k.index(0), k.index(d), k.index(1),
              ValueRange{k.f32(0.0)},
              [&](OpBuilder &nb, Location nl, Value dd, ValueRange acc) {
                Value x =
                    memref::LoadOp::create(nb, nl, qTile, ValueRange{gi, dd});
                Value y =
                    memref::LoadOp::create(nb, nl, kTile, ValueRange{j, dd});
                scf::YieldOp::create(
                    nb, nl,
                    ValueRange{math::FmaOp::create(nb, nl, x, y, acc[0])});
              });
          Value tok = k.add(s0, j);
          Value s = arith::SelectOp::create(
              b, loc, k.less(tok, hi), dot.getResult(0),
              k.f32(-std::numeric_limits<double>::infinity()));
          memref::StoreOp::create(
              b, loc, s, sTile,
              ValueRange{gi, k.add(steps.getInductionVar(), j)});
        });
      }
      // Softmax statistics of the chunk, one thread per query head.
      forEach(g, [&](Value gi) {
        auto maxLoop = scf::ForOp::create(
            b, loc, k.index(0), k.index(kChunk), k.index(1),
            ValueRange{k.f32(-std::numeric_limits<double>::infinity())},
            [&](OpBuilder &nb, Location nl, Value j, ValueRange acc) {
              Value s =
                  memref::LoadOp::create(nb, nl, sTile, ValueRange{gi, j});
              scf::YieldOp::create(
                  nb, nl,
                  ValueRange{arith::MaximumFOp::create(nb, nl, s, acc[0])});
            });
        Value m = maxLoop.getResult(0);
        // No token: e^(-inf - 0) = 0 rather than NaN.
        Value finite = arith::SelectOp::create(
            b, loc,
            arith::CmpFOp::create(
                b, loc, arith::CmpFPredicate::OEQ, m,
                k.f32(-std::numeric_limits<double>::infinity())),
            k.f32(0.0), m);
        auto sumLoop = scf::ForOp::create(
            b, loc, k.index(0), k.index(kChunk), k.index(1),
            ValueRange{k.f32(0.0)},
            [&](OpBuilder &nb, Location nl, Value j, ValueRange acc) {
              Value s =
                  memref::LoadOp::create(nb, nl, sTile, ValueRange{gi, j});
              Value p = math::ExpOp::create(
                  nb, nl, arith::SubFOp::create(nb, nl, s, finite));
              memref::StoreOp::create(nb, nl, p, sTile, ValueRange{gi, j});
              scf::YieldOp::create(
                  nb, nl, ValueRange{arith::AddFOp::create(nb, nl, acc[0], p)});
            });
        memref::StoreOp::create(b, loc, m, maxima, ValueRange{bb, h, c, gi});
        memref::StoreOp::create(b, loc, sumLoop.getResult(0), sums,
                                ValueRange{bb, h, c, gi});
      });
      // Weighted values, one thread per channel and all query heads.
      forEach(d, [&](Value dd) {
        SmallVector<Value> zeros(g, k.f32(0.0));
        auto acc = scf::ForOp::create(
            b, loc, k.index(0), k.index(kChunk), k.index(1), zeros,
            [&](OpBuilder &nb, Location nl, Value j, ValueRange carried) {
              OpBuilder::InsertionGuard g3(b);
              b.setInsertionPointToEnd(nb.getInsertionBlock());
              Value tok = k.add(t0, j);
              Value v = k.loadOrZero(k.less(tok, hi), [&] {
                return element(buf, /*keys=*/false, bb, h, tok, dd, nc);
              });
              SmallVector<Value> next;
              for (int64_t gi = 0; gi < g; ++gi) {
                Value p = memref::LoadOp::create(b, loc, sTile,
                                                 ValueRange{k.index(gi), j});
                next.push_back(math::FmaOp::create(b, loc, p, v, carried[gi]));
              }
              scf::YieldOp::create(b, loc, next);
            });
        for (int64_t gi = 0; gi < g; ++gi)
          memref::StoreOp::create(b, loc, acc.getResult(gi), outs,
                                  ValueRange{bb, h, c, k.index(gi), dd});
      });
    }
    auto asTensor = [&](Value m) {
      auto mt = cast<MemRefType>(m.getType());
      return bufferization::ToTensorOp::create(
          b, loc, RankedTensorType::get(mt.getShape(), f32), m,
          /*restrict=*/true, /*writable=*/true);
    };
    return mergeChunks(b, loc, q4, asTensor(outs), asTensor(maxima),
                       asTensor(sums));
  }
};

//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

struct EmptyLowering : public OpConversionPattern<kv::EmptyOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(kv::EmptyOp op, OneToNOpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto type = cast<CacheType>(op.getType());
    SmallVector<Value> storage;
    for (RankedTensorType t : type.getStorageTypes()) {
      SmallVector<OpFoldResult> shape;
      for (int64_t d : t.getShape())
        shape.push_back(rewriter.getIndexAttr(d));
      Value zero = arith::ConstantOp::create(
          rewriter, loc, rewriter.getZeroAttr(t.getElementType()));
      storage.push_back(filled(rewriter, loc, shape, zero));
    }
    rewriter.replaceOpWithMultiple(op, {storage});
    return success();
  }
};

struct AppendLowering : public OpConversionPattern<kv::AppendOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(kv::AppendOp op, OneToNOpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    OpBuilder &b = rewriter;
    auto type = cast<CacheType>(op.getType());
    SmallVector<Value> storage(adaptor.getCache().begin(),
                               adaptor.getCache().end());
    Value keys = adaptor.getKeys().front();
    Value values =
        adaptor.getValues().empty() ? Value() : adaptor.getValues().front();
    int64_t tokenDim = type.isLatent() ? 1 : 2;
    Value n = lengthOf(b, loc, storage.back(), type);
    Value count = tensor::DimOp::create(b, loc, keys, tokenDim);
    // Dynamic sizes of the new tokens must match the cache (and keys the
    // values): the writes below take their extents from these tensors.
    SmallVector<std::pair<Value, int64_t>> expected;
    if (type.isLatent()) {
      expected = {
          {keys, type.getBatch()}, {Value(), 0}, {keys, type.getRank()}};
    } else {
      expected = {{keys, type.getBatch()},
                  {keys, type.getHeads()},
                  {Value(), 0},
                  {keys, type.getHeadSize()}};
    }
    auto sizeCheck = [&](Value tensor, int64_t dim, Value want) {
      if (!cast<RankedTensorType>(tensor.getType()).isDynamicDim(dim))
        return;
      checkEqual(b, loc, tensor::DimOp::create(b, loc, tensor, dim), want,
                 "kv.append: the new tokens' sizes do not match the cache "
                 "(or keys and values differ)");
    };
    for (Value t : {keys, values}) {
      if (!t)
        continue;
      for (auto [dim, e] : llvm::enumerate(expected))
        if (e.first)
          sizeCheck(t, dim, indexConst(b, loc, e.second));
    }
    if (values && (cast<RankedTensorType>(keys.getType()).isDynamicDim(2) ||
                   cast<RankedTensorType>(values.getType()).isDynamicDim(2))) {
      checkEqual(b, loc, count, tensor::DimOp::create(b, loc, values, 2),
                 "kv.append: keys and values hold different token counts");
    }
    Value total = arith::AddIOp::create(b, loc, n, count);
    Value fits = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ule, total,
                                       indexConst(b, loc, type.getCapacity()));
    cf::AssertOp::create(b, loc, fits,
                         "kv.append: the tokens do not fit in the cache's "
                         "capacity");
    Value length = lengthTensor(b, loc, total);

    if (!type.isQuantized()) {
      Type elt = type.getFormat();
      SmallVector<Value> result;
      result.push_back(insertDim(b, loc, toElement(b, loc, keys, elt),
                                 storage[0], tokenDim, n));
      if (!type.isLatent())
        result.push_back(insertDim(b, loc, toElement(b, loc, values, elt),
                                   storage[1], tokenDim, n));
      result.push_back(length);
      rewriter.replaceOpWithMultiple(op, {result});
      return success();
    }

    // Window + new tokens, in order; the first `moved` of them (a multiple
    // of G_t) go to the compressed part, the rest form the new window.
    Value ncOld = compressedCount(b, loc, n, type);
    Value ncNew = compressedCount(b, loc, total, type);
    Value moved = arith::SubIOp::create(b, loc, ncNew, ncOld);
    Value wOld = arith::SubIOp::create(b, loc, n, ncOld);
    Value wNew = arith::SubIOp::create(b, loc, total, ncNew);
    Value pendingLen = arith::AddIOp::create(b, loc, wOld, count);
    auto pendingOf = [&](Value window, Value fresh) {
      SmallVector<OpFoldResult> shape = mixedSizes(b, loc, window);
      shape[2] = pendingLen;
      Value pending = tensor::EmptyOp::create(b, loc, shape, b.getF32Type());
      pending = insertDim(b, loc,
                          sliceDim(b, loc, window, 2, b.getIndexAttr(0), wOld),
                          pending, 2, b.getIndexAttr(0));
      return insertDim(b, loc, toF32(b, loc, fresh), pending, 2, wOld);
    };
    Value pendingK = pendingOf(storage[6], keys);
    Value pendingV = pendingOf(storage[7], values);
    Value newWk = insertDim(b, loc, sliceDim(b, loc, pendingK, 2, moved, wNew),
                            storage[6], 2, b.getIndexAttr(0));
    Value newWv = insertDim(b, loc, sliceDim(b, loc, pendingV, 2, moved, wNew),
                            storage[7], 2, b.getIndexAttr(0));

    unsigned bits = type.getBits();
    int64_t gt = type.getKeyGroup(), gc = type.getValueGroup();
    int64_t bsz = type.getBatch(), h = type.getHeads(), d = type.getHeadSize();
    MLIRContext *ctx = b.getContext();
    Value groups =
        arith::DivUIOp::create(b, loc, moved, indexConst(b, loc, gt));

    // Keys: per channel over groups of G_t tokens.
    Value movingK = sliceDim(b, loc, pendingK, 2, b.getIndexAttr(0), moved);
    Value kGrouped = tensor::ExpandShapeOp::create(
        b, loc,
        RankedTensorType::get({bsz, h, ShapedType::kDynamic, gt, d},
                              b.getF32Type()),
        movingK, SmallVector<ReassociationIndices>{{0}, {1}, {2, 3}, {4}},
        SmallVector<OpFoldResult>{b.getIndexAttr(bsz), b.getIndexAttr(h),
                                  groups, b.getIndexAttr(gt),
                                  b.getIndexAttr(d)});
    auto [kmn, kmx] = minMax(b, loc, kGrouped, 3);
    Value kscale = scaleOf(b, loc, kmn, kmx, bits);
    AffineExpr e0, e1, e2, e3, e4;
    bindDims(ctx, e0, e1, e2, e3, e4);
    Value kCodes = codesOf(b, loc, kGrouped, kmn, kscale,
                           AffineMap::get(5, 0, {e0, e1, e2, e4}, ctx), bits);
    kCodes = tensor::CollapseShapeOp::create(
        b, loc, kCodes,
        SmallVector<ReassociationIndices>{{0}, {1}, {2, 3}, {4}});
    Value groupOffset =
        arith::DivUIOp::create(b, loc, ncOld, indexConst(b, loc, gt));

    // Values: per token over groups of G_c channels.
    Value movingV = sliceDim(b, loc, pendingV, 2, b.getIndexAttr(0), moved);
    Value vGrouped = tensor::ExpandShapeOp::create(
        b, loc,
        RankedTensorType::get({bsz, h, ShapedType::kDynamic, d / gc, gc},
                              b.getF32Type()),
        movingV, SmallVector<ReassociationIndices>{{0}, {1}, {2}, {3, 4}},
        SmallVector<OpFoldResult>{b.getIndexAttr(bsz), b.getIndexAttr(h), moved,
                                  b.getIndexAttr(d / gc), b.getIndexAttr(gc)});
    auto [vmn, vmx] = minMax(b, loc, vGrouped, 4);
    Value vscale = scaleOf(b, loc, vmn, vmx, bits);
    Value vCodes = codesOf(b, loc, vGrouped, vmn, vscale,
                           AffineMap::get(5, 0, {e0, e1, e2, e3}, ctx), bits);
    vCodes = tensor::CollapseShapeOp::create(
        b, loc, vCodes,
        SmallVector<ReassociationIndices>{{0}, {1}, {2}, {3, 4}});

    SmallVector<Value> result = {
        insertDim(b, loc, pack(b, loc, kCodes, bits), storage[0], 2, ncOld),
        insertDim(b, loc, kscale, storage[1], 2, groupOffset),
        insertDim(b, loc, kmn, storage[2], 2, groupOffset),
        insertDim(b, loc, pack(b, loc, vCodes, bits), storage[3], 2, ncOld),
        insertDim(b, loc, vscale, storage[4], 2, ncOld),
        insertDim(b, loc, vmn, storage[5], 2, ncOld),
        newWk,
        newWv,
        length};
    rewriter.replaceOpWithMultiple(op, {result});
    return success();
  }
};

struct DecodeAttentionLowering
    : public OpConversionPattern<kv::DecodeAttentionOp> {
  DecodeAttentionLowering(const TypeConverter &converter, MLIRContext *ctx,
                          bool cpuKernels, bool gpuKernels,
                          bool workgroupMemory)
      : OpConversionPattern(converter, ctx), cpuKernels(cpuKernels),
        gpuKernels(gpuKernels), workgroupMemory(workgroupMemory) {}
  bool cpuKernels;
  /// GPUDecodeKernel where it applies, with its tiles in workgroup memory
  /// or (the CPU form) not.
  bool gpuKernels, workgroupMemory;
  LogicalResult
  matchAndRewrite(kv::DecodeAttentionOp op, OneToNOpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    OpBuilder &b = rewriter;
    auto type = cast<CacheType>(op.getCache().getType());
    ValueRange storage = adaptor.getCache();
    Value q = adaptor.getQuery().front();
    double scale = op.getEffectiveScale();
    Value n = lengthOf(b, loc, storage.back(), type);
    auto qType = cast<RankedTensorType>(q.getType());
    int64_t bsz = type.getBatch();
    Value o4;

    if (type.isLatent()) {
      // The latent c[B, n, r].
      Value c = sliceDim(b, loc, storage[0], 1, b.getIndexAttr(0), n);
      if (op.getUpKeys()) {
        // Keys and values reconstructed per head: [B, H, n, D].
        int64_t h = type.getHeads(), d = type.getHeadSize();
        auto reconstruct = [&](Value up) {
          SmallVector<OpFoldResult> shape = {
              b.getIndexAttr(bsz), b.getIndexAttr(h), n, b.getIndexAttr(d)};
          Value init = filled(b, loc, shape, f32Const(b, loc, 0.0));
          AffineExpr bb, hh, t, dd, r;
          bindDims(b.getContext(), bb, hh, t, dd, r);
          return multiplyAccumulate(b, loc, c, up, init, {bb, t, r},
                                    {r, hh, dd});
        };
        Value keys = reconstruct(adaptor.getUpKeys().front());
        Value values = reconstruct(adaptor.getUpValues().front());
        o4 = floatAttention(b, loc, groupQuery(b, loc, q, h), keys, values,
                            scale);
      } else {
        // Attention on the latent itself: one key/value head of size r.
        auto cType = cast<RankedTensorType>(c.getType());
        Value c4 = tensor::ExpandShapeOp::create(
            b, loc,
            RankedTensorType::get(
                {bsz, 1, ShapedType::kDynamic, type.getRank()},
                cType.getElementType()),
            c, SmallVector<ReassociationIndices>{{0, 1}, {2}, {3}},
            SmallVector<OpFoldResult>{b.getIndexAttr(bsz), b.getIndexAttr(1), n,
                                      b.getIndexAttr(type.getRank())});
        o4 = floatAttention(b, loc, groupQuery(b, loc, q, 1), c4, c4, scale);
      }
    } else if (cpuKernels) {
      o4 = attentionKernel(b, loc, groupQuery(b, loc, q, type.getHeads()),
                           storage, type, n, scale);
    } else if (gpuKernels) {
      // Null where the kernel does not apply: the generic forms below.
      o4 =
          GPUDecodeKernel{b, loc, type,
                          GPUKernelBuilder{b, loc, workgroupMemory}}
              .build(groupQuery(b, loc, q, type.getHeads()), storage, n, scale);
    }
    if (!o4 && !type.isQuantized()) {
      Value keys = sliceDim(b, loc, storage[0], 2, b.getIndexAttr(0), n);
      Value values = sliceDim(b, loc, storage[1], 2, b.getIndexAttr(0), n);
      o4 = floatAttention(b, loc, groupQuery(b, loc, q, type.getHeads()), keys,
                          values, scale);
    } else if (!o4) {
      // Scores of the compressed tokens then of the window, one softmax over
      // both, then the two weighted sums.
      Value q4 = groupQuery(b, loc, q, type.getHeads());
      Value nc = compressedCount(b, loc, n, type);
      Value w = arith::SubIOp::create(b, loc, n, nc);
      Value groups = arith::DivUIOp::create(
          b, loc, nc, indexConst(b, loc, type.getKeyGroup()));
      OpFoldResult origin = b.getIndexAttr(0);
      Value kcodes = sliceDim(b, loc, storage[0], 2, origin, nc);
      Value kscale = sliceDim(b, loc, storage[1], 2, origin, groups);
      Value kmin = sliceDim(b, loc, storage[2], 2, origin, groups);
      Value vcodes = sliceDim(b, loc, storage[3], 2, origin, nc);
      Value vscale = sliceDim(b, loc, storage[4], 2, origin, nc);
      Value vmin = sliceDim(b, loc, storage[5], 2, origin, nc);
      Value wk = sliceDim(b, loc, storage[6], 2, origin, w);
      Value wv = sliceDim(b, loc, storage[7], 2, origin, w);
      Value sc =
          quantizedScores(b, loc, q4, kcodes, kscale, kmin, type, scale, nc);
      Value sw = floatScores(b, loc, q4, wk, scale);
      SmallVector<OpFoldResult> shape = mixedSizes(b, loc, sc);
      shape[3] = n;
      Value s = tensor::EmptyOp::create(b, loc, shape, b.getF32Type());
      s = insertDim(b, loc, sc, s, 3, origin);
      s = insertDim(b, loc, sw, s, 3, nc);
      Value l;
      Value p = softmaxWeights(b, loc, s, l);
      Value acc = filled(b, loc, mixedSizes(b, loc, q4), f32Const(b, loc, 0.0));
      acc = quantizedWeightedSum(b, loc, sliceDim(b, loc, p, 3, origin, nc),
                                 vcodes, vscale, vmin, type, acc);
      acc = floatWeightedSum(b, loc, sliceDim(b, loc, p, 3, nc, w), wv, acc);
      o4 = normalize(b, loc, acc, l);
    }
    Value o = tensor::CollapseShapeOp::create(
        b, loc, qType, o4, SmallVector<ReassociationIndices>{{0}, {1, 2}, {3}});
    rewriter.replaceOp(op, o);
    return success();
  }
};

struct PrefillAttentionLowering
    : public OpConversionPattern<kv::PrefillAttentionOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(kv::PrefillAttentionOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    OpBuilder &b = rewriter;
    Value q = adaptor.getQuery(), k = adaptor.getKeys(),
          v = adaptor.getValues();
    auto qt = cast<RankedTensorType>(q.getType());
    auto kt = cast<RankedTensorType>(k.getType());
    int64_t bsz = qt.getDimSize(0), hkv = kt.getDimSize(1);
    int64_t g = qt.getDimSize(1) / hkv, d = qt.getDimSize(3);
    Value tokens = tensor::DimOp::create(b, loc, k, 2);
    if (qt.isDynamicDim(2) || kt.isDynamicDim(2)) {
      checkEqual(b, loc, tokens, tensor::DimOp::create(b, loc, q, 2),
                 "kv.prefill_attention: query and keys hold different token "
                 "counts");
    }
    // Query heads grouped by key/value head, rows (query head, token).
    int64_t t = kt.getDimSize(2);
    OpFoldResult tokenCount = kt.isDynamicDim(2)
                                  ? OpFoldResult(tokens)
                                  : OpFoldResult(b.getIndexAttr(t));
    Value q5 = tensor::ExpandShapeOp::create(
        b, loc, RankedTensorType::get({bsz, hkv, g, t, d}, b.getF32Type()), q,
        SmallVector<ReassociationIndices>{{0}, {1, 2}, {3}, {4}},
        SmallVector<OpFoldResult>{b.getIndexAttr(bsz), b.getIndexAttr(hkv),
                                  b.getIndexAttr(g), tokenCount,
                                  b.getIndexAttr(d)});
    Value q4 = tensor::CollapseShapeOp::create(
        b, loc, q5, SmallVector<ReassociationIndices>{{0}, {1}, {2, 3}, {4}});
    Value s = floatScores(b, loc, q4, k, op.getEffectiveScale());
    if (op.getCausal()) {
      // Row r holds query token r mod T; keys after it are masked.
      float inf = std::numeric_limits<float>::infinity();
      Value minusInf = f32Const(b, loc, -inf);
      s = elementwise(
          b, loc, s, s, [&](OpBuilder &nb, Location nloc, ValueRange a) {
            Value row = linalg::IndexOp::create(nb, nloc, 2);
            Value key = linalg::IndexOp::create(nb, nloc, 3);
            Value query = arith::RemUIOp::create(nb, nloc, row, tokens);
            Value future = arith::CmpIOp::create(
                nb, nloc, arith::CmpIPredicate::ugt, key, query);
            return arith::SelectOp::create(nb, nloc, future, minusInf, a[0])
                .getResult();
          });
    }
    Value l;
    Value p = softmaxWeights(b, loc, s, l);
    Value acc = filled(b, loc, mixedSizes(b, loc, q4), f32Const(b, loc, 0.0));
    Value o4 = normalize(
        b, loc,
        floatWeightedSum(b, loc, p, v, acc, op.getCausal() ? tokens : Value()),
        l);
    Value o5 = tensor::ExpandShapeOp::create(
        b, loc, RankedTensorType::get({bsz, hkv, g, t, d}, b.getF32Type()), o4,
        SmallVector<ReassociationIndices>{{0}, {1}, {2, 3}, {4}},
        SmallVector<OpFoldResult>{b.getIndexAttr(bsz), b.getIndexAttr(hkv),
                                  b.getIndexAttr(g), tokenCount,
                                  b.getIndexAttr(d)});
    rewriter.replaceOp(
        op, tensor::CollapseShapeOp::create(
                b, loc, qt, o5,
                SmallVector<ReassociationIndices>{{0}, {1, 2}, {3}, {4}}));
    return success();
  }
};

struct ConvertKVToLinalgPass
    : public moka::impl::ConvertKVToLinalgPassBase<ConvertKVToLinalgPass> {
  using Base::Base;
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    TypeConverter converter;
    converter.addConversion([](Type t) { return t; });
    converter.addConversion(
        [](CacheType t, SmallVectorImpl<Type> &results) -> LogicalResult {
          for (RankedTensorType s : t.getStorageTypes())
            results.push_back(s);
          return success();
        });

    ConversionTarget target(*ctx);
    target.addIllegalDialect<kv::KVDialect>();
    target.addLegalDialect<
        arith::ArithDialect, bufferization::BufferizationDialect,
        cf::ControlFlowDialect, linalg::LinalgDialect, math::MathDialect,
        memref::MemRefDialect, scf::SCFDialect, tensor::TensorDialect,
        vector::VectorDialect>();
    target.addDynamicallyLegalOp<func::FuncOp>([&](func::FuncOp op) {
      return converter.isSignatureLegal(op.getFunctionType()) &&
             converter.isLegal(&op.getBody());
    });
    target.addDynamicallyLegalOp<func::ReturnOp, func::CallOp>(
        [&](Operation *op) { return converter.isLegal(op); });

    RewritePatternSet patterns(ctx);
    patterns.add<EmptyLowering, AppendLowering, PrefillAttentionLowering>(
        converter, ctx);
    patterns.add<DecodeAttentionLowering>(converter, ctx, cpuKernels,
                                          gpuKernels, workgroupMemory);
    populateFunctionOpInterfaceTypeConversionPattern<func::FuncOp>(patterns,
                                                                   converter);
    populateReturnOpTypeConversionPattern(patterns, converter);
    populateCallOpTypeConversionPattern(patterns, converter);
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
