//===- GPUKernelBuilder.cpp - Loops mapped to GPU blocks and threads ------===//

#include "moka/Conversion/Utils/GPUKernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;
using namespace moka;

Value GPUKernelBuilder::index(int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

Value GPUKernelBuilder::f32(double v) {
  return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
}

Value GPUKernelBuilder::add(Value x, Value y) {
  return arith::AddIOp::create(b, loc, x, y);
}

Value GPUKernelBuilder::mul(Value x, Value y) {
  return arith::MulIOp::create(b, loc, x, y);
}

Value GPUKernelBuilder::divConst(Value x, int64_t y) {
  return arith::DivUIOp::create(b, loc, x, index(y));
}

Value GPUKernelBuilder::remConst(Value x, int64_t y) {
  return arith::RemUIOp::create(b, loc, x, index(y));
}

Value GPUKernelBuilder::less(Value x, Value y) {
  return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, x, y);
}

Value GPUKernelBuilder::both(Value x, Value y) {
  return arith::AndIOp::create(b, loc, x, y);
}

Value GPUKernelBuilder::tiles(Value x, int64_t tile) {
  Value n = arith::CeilDivUIOp::create(b, loc, x, index(tile));
  return arith::MaxUIOp::create(b, loc, n, index(1));
}

Value GPUKernelBuilder::readBuffer(Value t) {
  auto type = cast<RankedTensorType>(t.getType());
  auto layout = StridedLayoutAttr::get(
      b.getContext(), ShapedType::kDynamic,
      SmallVector<int64_t>(type.getRank(), ShapedType::kDynamic));
  auto memType =
      MemRefType::get(type.getShape(), type.getElementType(), layout);
  return bufferization::ToBufferOp::create(b, loc, memType, t,
                                           /*read_only=*/true);
}

Value GPUKernelBuilder::loadIndex(Value buf, ValueRange ivs) {
  Value v = memref::LoadOp::create(b, loc, buf, ivs);
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
}

Value GPUKernelBuilder::loadF32(Value buf, ValueRange ivs) {
  Value v = memref::LoadOp::create(b, loc, buf, ivs);
  if (v.getType().isF32())
    return v;
  return arith::ExtFOp::create(b, loc, b.getF32Type(), v);
}

Value GPUKernelBuilder::loadOrZero(Value cond, function_ref<Value()> load) {
  auto ifOp = scf::IfOp::create(b, loc, TypeRange{b.getF32Type()}, cond,
                                /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(ifOp.thenBlock());
  scf::YieldOp::create(b, loc, load());
  b.setInsertionPointToStart(ifOp.elseBlock());
  scf::YieldOp::create(b, loc, f32(0.0));
  return ifOp.getResult(0);
}

SmallVector<Value> GPUKernelBuilder::blocks(ArrayRef<Value> sizes) {
  assert(!sizes.empty() && sizes.size() <= 3 && "a grid has 1 to 3 dims");
  MLIRContext *ctx = b.getContext();
  gpu::MappingId ids[] = {gpu::MappingId::DimX, gpu::MappingId::DimY,
                          gpu::MappingId::DimZ};
  SmallVector<Attribute> mapping;
  SmallVector<OpFoldResult> ubs;
  for (auto [i, size] : llvm::enumerate(sizes)) {
    mapping.push_back(gpu::GPUBlockMappingAttr::get(ctx, ids[i]));
    ubs.push_back(size);
  }
  auto forall =
      scf::ForallOp::create(b, loc, ubs, ValueRange{}, b.getArrayAttr(mapping));
  b.setInsertionPoint(forall.getTerminator());
  return SmallVector<Value>(forall.getInductionVars());
}

Value GPUKernelBuilder::tile(ArrayRef<int64_t> shape) {
  if (!workgroupMemory)
    return memref::AllocOp::create(b, loc,
                                   MemRefType::get(shape, b.getF32Type()));
  auto space =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  return memref::AllocaOp::create(
      b, loc, MemRefType::get(shape, b.getF32Type(), AffineMap(), space));
}

void GPUKernelBuilder::threads(function_ref<void(Value)> body) {
  auto mapping = b.getArrayAttr({gpu::GPUThreadMappingAttr::get(
      b.getContext(), gpu::MappingId::LinearDim0)});
  auto forall = scf::ForallOp::create(
      b, loc, ArrayRef<OpFoldResult>{b.getIndexAttr(threadCount)}, ValueRange{},
      mapping);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(forall.getTerminator());
  Value t = forall.getInductionVar(0);
  if (!workgroupMemory)
    t = arith::SubIOp::create(b, loc, index(threadCount - 1), t);
  body(t);
}

void GPUKernelBuilder::repeat(int64_t count, function_ref<void(Value)> body) {
  auto loop = scf::ForOp::create(b, loc, index(0), index(count), index(1));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(loop.getBody()->getTerminator());
  body(loop.getInductionVar());
}

void GPUKernelBuilder::when(Value cond, function_ref<void()> body) {
  auto ifOp = scf::IfOp::create(b, loc, cond);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
  body();
}

void GPUKernelBuilder::zeroTiles(ArrayRef<Value> accs) {
  assert(threadCount == kSide * kSide && "tile products take 256 threads");
  threads([&](Value t) {
    repeat(kTile * kTile / threadCount, [&](Value q) {
      Value i = add(t, mul(q, index(threadCount)));
      for (Value acc : accs)
        memref::StoreOp::create(
            b, loc, f32(0.0), acc,
            ValueRange{divConst(i, kTile), remConst(i, kTile)});
    });
  });
}

void GPUKernelBuilder::accumulateTiles(int64_t steps, Value lhs,
                                       ArrayRef<Value> rhs,
                                       ArrayRef<Value> accs) {
  assert(threadCount == kSide * kSide && "tile products take 256 threads");
  assert(rhs.size() == accs.size() && "one accumulator per right operand");
  threads([&](Value t) {
    Value ty = divConst(t, kSide), tx = remConst(t, kSide);
    SmallVector<Value> rowOf, colOf, init;
    for (int64_t i = 0; i < kMicro; ++i) {
      rowOf.push_back(add(ty, index(i * kSide)));
      colOf.push_back(add(tx, index(i * kSide)));
    }
    for (Value acc : accs)
      for (int64_t i = 0; i < kMicro; ++i)
        for (int64_t j = 0; j < kMicro; ++j)
          init.push_back(memref::LoadOp::create(
              b, loc, acc, ValueRange{rowOf[i], colOf[j]}));
    auto loop = scf::ForOp::create(
        b, loc, index(0), index(steps), index(1), init,
        [&](OpBuilder &nb, Location nl, Value s, ValueRange carried) {
          SmallVector<Value> lv, next;
          for (int64_t i = 0; i < kMicro; ++i)
            lv.push_back(
                memref::LoadOp::create(nb, nl, lhs, ValueRange{s, rowOf[i]}));
          unsigned slot = 0;
          for (Value r : rhs) {
            SmallVector<Value> rv;
            for (int64_t j = 0; j < kMicro; ++j)
              rv.push_back(
                  memref::LoadOp::create(nb, nl, r, ValueRange{s, colOf[j]}));
            for (int64_t i = 0; i < kMicro; ++i)
              for (int64_t j = 0; j < kMicro; ++j)
                next.push_back(
                    math::FmaOp::create(nb, nl, lv[i], rv[j], carried[slot++]));
          }
          scf::YieldOp::create(nb, nl, next);
        });
    unsigned slot = 0;
    for (Value acc : accs)
      for (int64_t i = 0; i < kMicro; ++i)
        for (int64_t j = 0; j < kMicro; ++j)
          memref::StoreOp::create(b, loc, loop.getResult(slot++), acc,
                                  ValueRange{rowOf[i], colOf[j]});
  });
}

void GPUKernelBuilder::forEachOwnedOutput(
    function_ref<void(Value, Value)> body) {
  assert(threadCount == kSide * kSide && "tile products take 256 threads");
  threads([&](Value t) {
    Value ty = divConst(t, kSide), tx = remConst(t, kSide);
    for (int64_t i = 0; i < kMicro; ++i)
      for (int64_t j = 0; j < kMicro; ++j)
        body(add(ty, index(i * kSide)), add(tx, index(j * kSide)));
  });
}
