//===- MapParallelLoopsToGPU.cpp - scf.parallel to GPU grids --------------===//
//
// Tiles each outermost scf.parallel loop of a host function for GPU blocks
// of threads and sets the GPU dialect's loop mapping attributes.
//
//===----------------------------------------------------------------------===//

#include "moka/Transforms/Passes.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/ParallelLoopMapper.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

namespace moka {
#define GEN_PASS_DEF_MAPPARALLELLOOPSTOGPUPASS
#include "moka/Transforms/Passes.h.inc"
} // namespace moka

using namespace mlir;
using gpu::Processor;

namespace {

constexpr int64_t kWarp = 32;
constexpr int64_t kMaxGridYZ = 65535;

gpu::ParallelLoopDimMappingAttr mapTo(MLIRContext *ctx, Processor p) {
  AffineMap id = AffineMap::getMultiDimIdentityMap(1, ctx);
  return gpu::ParallelLoopDimMappingAttr::get(ctx, p, id, id);
}

/// Marks every loop nested in `op` sequential.
LogicalResult mapNestedSequential(scf::ParallelOp op) {
  WalkResult result = op.getBody()->walk([&](scf::ParallelOp nested) {
    SmallVector<gpu::ParallelLoopDimMappingAttr> mapping(
        nested.getNumLoops(),
        mapTo(nested.getContext(), Processor::Sequential));
    if (failed(gpu::setMappingAttr(nested, mapping)))
      return WalkResult::interrupt();
    return WalkResult::advance();
  });
  return failure(result.wasInterrupted());
}

struct MapParallelLoopsToGPUPass
    : public moka::impl::MapParallelLoopsToGPUPassBase<
          MapParallelLoopsToGPUPass> {
  using Base::Base;

  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    // CUDA allows at most 1024 threads per block.
    if (blockSize < 1 || blockSize > 1024) {
      getOperation().emitError()
          << "moka-map-parallel-loops-to-gpu: block-size must be between 1 "
             "and 1024 threads, not "
          << static_cast<int64_t>(blockSize);
      return signalPassFailure();
    }
    SmallVector<scf::ParallelOp> roots;
    getOperation().walk([&](scf::ParallelOp op) {
      if (!op->getParentOfType<scf::ParallelOp>() &&
          !op->getParentOfType<gpu::LaunchOp>() &&
          !op->hasAttr(gpu::getMappingAttrName()))
        roots.push_back(op);
    });
    for (scf::ParallelOp op : roots) {
      if (failed(mapNestedSequential(op)))
        return signalPassFailure();
      unsigned n = op.getNumLoops();
      // Threads go along the innermost dimension unless it is statically
      // shorter than a warp.
      unsigned threadDim = n - 1;
      std::optional<int64_t> lb =
          getConstantIntValue(op.getLowerBound()[n - 1]);
      std::optional<int64_t> ub =
          getConstantIntValue(op.getUpperBound()[n - 1]);
      std::optional<int64_t> step = getConstantIntValue(op.getStep()[n - 1]);
      if (lb && ub && step && *step > 0 && (*ub - *lb) / *step < kWarp)
        threadDim = 0;
      SmallVector<int64_t> tiles(n, 1);
      tiles[threadDim] = blockSize;
      // Static trip counts, where known (before tiling rewrites the steps).
      SmallVector<std::optional<int64_t>> trips(n);
      for (unsigned d = 0; d < n; ++d) {
        std::optional<int64_t> l = getConstantIntValue(op.getLowerBound()[d]);
        std::optional<int64_t> u = getConstantIntValue(op.getUpperBound()[d]);
        std::optional<int64_t> s = getConstantIntValue(op.getStep()[d]);
        if (l && u && s && *s > 0)
          trips[d] = llvm::divideCeil(std::max<int64_t>(*u - *l, 0), *s);
      }
      auto [outer, inner] =
          scf::tileParallelLoop(op, tiles, /*noMinMaxBounds=*/true);

      // Grid: dimension 0 on block_x (up to 2^31 - 1 blocks), the threads'
      // dimension's tiles on block_y, and a further dimension on block_z
      // only when it statically fits CUDA's 65535; the others run
      // sequentially in each thread.
      SmallVector<gpu::ParallelLoopDimMappingAttr> outerMap(
          n, mapTo(ctx, Processor::Sequential));
      SmallVector<Processor> free = {Processor::BlockY, Processor::BlockZ};
      outerMap[0] = mapTo(ctx, Processor::BlockX);
      if (threadDim != 0) {
        outerMap[threadDim] = mapTo(ctx, free.front());
        free.erase(free.begin());
      }
      for (unsigned d = 1; d < n && !free.empty(); ++d) {
        if (d == threadDim)
          continue;
        if (!trips[d] || *trips[d] > kMaxGridYZ)
          continue;
        outerMap[d] = mapTo(ctx, free.front());
        free.erase(free.begin());
      }
      SmallVector<gpu::ParallelLoopDimMappingAttr> innerMap(
          inner.getNumLoops(), mapTo(ctx, Processor::Sequential));
      innerMap[threadDim] = mapTo(ctx, Processor::ThreadX);
      if (failed(gpu::setMappingAttr(outer, outerMap)) ||
          failed(gpu::setMappingAttr(inner, innerMap)))
        return signalPassFailure();
    }
  }
};

} // namespace
