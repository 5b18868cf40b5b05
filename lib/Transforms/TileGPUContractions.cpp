//===- TileGPUContractions.cpp - Contractions as tiled GPU kernels --------===//
//
// Rewrites linalg contractions on tensors as loops over GPU blocks and
// threads with their operand tiles staged in workgroup memory
// (GPUKernelBuilder), for moka-map-forall-to-gpu to turn into kernels.
//
//===----------------------------------------------------------------------===//

#include "moka/Conversion/Utils/GPUKernelBuilder.h"
#include "moka/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"

namespace moka {
#define GEN_PASS_DEF_TILEGPUCONTRACTIONSPASS
#include "moka/Transforms/Passes.h.inc"
} // namespace moka

using namespace mlir;
using namespace moka;

namespace {

constexpr int64_t kTile = GPUKernelBuilder::kTile;
constexpr int64_t kStep = 32;
constexpr int64_t kMaxGridZ = 65535;

/// `v`, seen through any number of float extensions.
Value throughExtensions(Value v) {
  while (auto ext = v.getDefiningOp<arith::ExtFOp>())
    v = ext.getIn();
  return v;
}

/// Whether `op`'s body is `out + x * y` (f32) with x and y its two inputs
/// (possibly extended from narrower floats).
bool isMulAddBody(linalg::LinalgOp op) {
  Block *body = op.getBlock();
  if (body->getNumArguments() != 3 || !body->getArgument(2).getType().isF32())
    return false;
  auto yield = cast<linalg::YieldOp>(body->getTerminator());
  auto add = yield.getOperand(0).getDefiningOp<arith::AddFOp>();
  if (!add)
    return false;
  Value lhs = add.getLhs(), rhs = add.getRhs();
  if (rhs == body->getArgument(2))
    std::swap(lhs, rhs);
  auto mul = rhs.getDefiningOp<arith::MulFOp>();
  if (lhs != body->getArgument(2) || !mul)
    return false;
  Value x = throughExtensions(mul.getLhs()),
        y = throughExtensions(mul.getRhs());
  Value a = body->getArgument(0), b = body->getArgument(1);
  if (!((x == a && y == b) || (x == b && y == a)))
    return false;
  // Nothing else in the body.
  for (Operation &inner : body->without_terminator())
    if (!isa<arith::AddFOp, arith::MulFOp, arith::ExtFOp>(inner))
      return false;
  return true;
}

struct Kernel {
  OpBuilder &b;
  Location loc;
  linalg::LinalgOp op;
  linalg::ContractionDimensions dims;
  GPUKernelBuilder k;
  SmallVector<Value> sizes; // of every loop

  Value product(ArrayRef<unsigned> loops) {
    Value p = k.index(1);
    for (unsigned l : loops)
      p = k.mul(p, sizes[l]);
    return p;
  }

  /// Writes into `ivs` the loop indices of `loops` for the linear index
  /// `linear` over them (the last fastest).
  void delinearize(Value linear, ArrayRef<unsigned> loops,
                   SmallVectorImpl<Value> &ivs) {
    for (unsigned l : llvm::reverse(loops)) {
      if (l == loops.front()) {
        ivs[l] = linear;
        break;
      }
      ivs[l] = arith::RemUIOp::create(b, loc, linear, sizes[l]);
      linear = arith::DivUIOp::create(b, loc, linear, sizes[l]);
    }
  }

  /// The indices of operand `operand` at loop indices `ivs`.
  SmallVector<Value> indicesOf(OpOperand &operand, ArrayRef<Value> ivs) {
    SmallVector<Value> idx;
    for (AffineExpr e : op.getMatchingIndexingMap(&operand).getResults())
      idx.push_back(ivs[cast<AffineDimExpr>(e).getPosition()]);
    return idx;
  }

  /// Whether the innermost dimension of `operand` is a reduction loop (then
  /// consecutive threads stage consecutive reduction steps, which are
  /// consecutive in memory).
  bool reductionInnermost(OpOperand &operand) {
    AffineMap map = op.getMatchingIndexingMap(&operand);
    if (map.getNumResults() == 0)
      return false;
    unsigned last = cast<AffineDimExpr>(map.getResults().back()).getPosition();
    return llvm::is_contained(dims.k, last);
  }

  Value build() {
    for (Range r : op.createLoopRanges(b, loc))
      sizes.push_back(getValueOrCreateConstantIndexOp(b, loc, r.size));
    OpOperand *lhs = op.getDpsInputOperand(0), *rhs = op.getDpsInputOperand(1);
    OpOperand *init = op.getDpsInitOperand(0);
    Value lhsBuf = k.readBuffer(lhs->get()), rhsBuf = k.readBuffer(rhs->get());
    Value initBuf = k.readBuffer(init->get());
    auto outType = cast<RankedTensorType>(init->get().getType());
    SmallVector<Value> dynamicSizes;
    for (int64_t i = 0; i < outType.getRank(); ++i)
      if (outType.isDynamicDim(i))
        dynamicSizes.push_back(tensor::DimOp::create(b, loc, init->get(), i));
    Value out = memref::AllocOp::create(
        b, loc, MemRefType::get(outType.getShape(), b.getF32Type()),
        dynamicSizes);
    Value rows = product(dims.m), cols = product(dims.n),
          depth = product(dims.k), batch = product(dims.batch);
    unsigned numLoops = op.getNumLoops();
    int64_t threads = k.threadCount;
    {
      OpBuilder::InsertionGuard guard(b);
      // Row tiles on x (up to 2^31 - 1 blocks; y and z stop at 65535).
      SmallVector<Value> ids =
          k.blocks({k.tiles(rows, kTile), k.tiles(cols, kTile), batch});
      Value r0 = k.mul(ids[0], k.index(kTile));
      Value c0 = k.mul(ids[1], k.index(kTile));
      Value aTile = k.tile({kStep, kTile + 1});
      Value bTile = k.tile({kStep, kTile + 1});
      Value acc = k.tile({kTile, kTile});
      k.zeroTiles({acc});
      auto steps =
          scf::ForOp::create(b, loc, k.index(0), depth, k.index(kStep));
      {
        OpBuilder::InsertionGuard g2(b);
        b.setInsertionPoint(steps.getBody()->getTerminator());
        Value s0 = steps.getInductionVar();
        // Stages operand `operand` (lines along `lineLoops`, from `first`
        // of `lineCount`) into `tile`[step][line].
        auto stage = [&](OpOperand &operand, Value buf, Value tile,
                         ArrayRef<unsigned> lineLoops, Value first,
                         Value lineCount) {
          bool alongK = reductionInnermost(operand);
          k.threads([&](Value t) {
            k.repeat(kStep * kTile / threads, [&](Value q) {
              Value flat = k.add(t, k.mul(q, k.index(threads)));
              Value step =
                  alongK ? k.remConst(flat, kStep) : k.divConst(flat, kTile);
              Value line =
                  alongK ? k.divConst(flat, kStep) : k.remConst(flat, kTile);
              Value kk = k.add(s0, step), ll = k.add(first, line);
              Value v = k.loadOrZero(
                  k.both(k.less(kk, depth), k.less(ll, lineCount)), [&] {
                    SmallVector<Value> ivs(numLoops);
                    delinearize(ids[2], dims.batch, ivs);
                    delinearize(ll, lineLoops, ivs);
                    delinearize(kk, dims.k, ivs);
                    return k.loadF32(buf, indicesOf(operand, ivs));
                  });
              memref::StoreOp::create(b, loc, v, tile, ValueRange{step, line});
            });
          });
        };
        stage(*lhs, lhsBuf, aTile, dims.m, r0, rows);
        stage(*rhs, rhsBuf, bTile, dims.n, c0, cols);
        k.accumulateTiles(kStep, aTile, {bTile}, {acc});
      }
      // out = init + the sums; consecutive threads take consecutive
      // columns.
      k.forEachOwnedOutput([&](Value tr, Value tc) {
        Value r = k.add(r0, tr), c = k.add(c0, tc);
        k.when(k.both(k.less(r, rows), k.less(c, cols)), [&] {
          SmallVector<Value> ivs(numLoops);
          delinearize(ids[2], dims.batch, ivs);
          delinearize(r, dims.m, ivs);
          delinearize(c, dims.n, ivs);
          SmallVector<Value> at = indicesOf(*init, ivs);
          Value sum = memref::LoadOp::create(b, loc, acc, ValueRange{tr, tc});
          Value v = arith::AddFOp::create(b, loc, k.loadF32(initBuf, at), sum);
          memref::StoreOp::create(b, loc, v, out, at);
        });
      });
    }
    return bufferization::ToTensorOp::create(b, loc, outType, out,
                                             /*restrict=*/true,
                                             /*writable=*/true);
  }
};

struct TileGPUContractionsPass
    : public moka::impl::TileGPUContractionsPassBase<TileGPUContractionsPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<linalg::LinalgOp> candidates;
    getOperation().walk([&](linalg::LinalgOp op) {
      // Only contractions at the top level of a function: a kernel cannot
      // be launched from a parallel loop's body, and one in a sequential
      // loop or a branch would mostly be a small product.
      if (op->getParentOp() != getOperation().getOperation() ||
          !op.hasPureTensorSemantics() || op.getNumDpsInputs() != 2 ||
          op.getNumDpsInits() != 1 || !isMulAddBody(op))
        return;
      candidates.push_back(op);
    });
    for (linalg::LinalgOp op : candidates) {
      FailureOr<linalg::ContractionDimensions> dims =
          linalg::inferContractionDims(op);
      // Every loop must be a row, column, reduction or batch loop (a
      // reduction that one operand alone indexes is none of them).
      if (failed(dims) || dims->m.empty() || dims->n.empty() ||
          dims->k.empty() ||
          dims->m.size() + dims->n.size() + dims->k.size() +
                  dims->batch.size() !=
              op.getNumLoops() ||
          !llvm::all_of(op.getIndexingMapsArray(), [](AffineMap m) {
            return m.isProjectedPermutation(/*allowZeroInResults=*/false);
          }))
        continue;
      // Batch loops go to grid z: statically within CUDA's limit.
      SmallVector<int64_t> ranges = op.getStaticLoopRanges();
      int64_t batch = 1;
      bool fits = true;
      for (unsigned l : dims->batch) {
        fits &= !ShapedType::isDynamic(ranges[l]);
        batch *= fits ? ranges[l] : 1;
      }
      if (!fits || batch < 1 || batch > kMaxGridZ)
        continue;
      OpBuilder b(op);
      Kernel kernel{b,
                    op.getLoc(),
                    op,
                    *dims,
                    GPUKernelBuilder{b, op.getLoc(), workgroupMemory},
                    {}};
      Value result = kernel.build();
      op->getResult(0).replaceAllUsesWith(result);
      op->erase();
    }
  }
};

} // namespace
