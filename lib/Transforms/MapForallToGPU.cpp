//===- MapForallToGPU.cpp - scf.forall on GPU blocks to gpu.launch --------===//
//
// Turns block-mapped scf.forall loops into gpu.launch and maps the thread
// loops nested in them with the GPU dialect's transform utilities.
//
//===----------------------------------------------------------------------===//

#include "moka/Transforms/Passes.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/TransformOps/GPUTransformOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/PatternMatch.h"

namespace moka {
#define GEN_PASS_DEF_MAPFORALLTOGPUPASS
#include "moka/Transforms/Passes.h.inc"
} // namespace moka

using namespace mlir;

namespace {

constexpr int64_t kMaxThreads = 1024;
constexpr int64_t kWarp = 32;

/// The grid dimension (0, 1, 2) of each of `op`'s loops, if every loop is
/// mapped to a distinct `#gpu.block<x|y|z>`.
std::optional<SmallVector<unsigned>> blockDims(scf::ForallOp op) {
  std::optional<ArrayAttr> mapping = op.getMapping();
  if (!mapping || mapping->empty())
    return std::nullopt;
  SmallVector<unsigned> dims;
  for (Attribute a : *mapping) {
    auto block = dyn_cast<gpu::GPUBlockMappingAttr>(a);
    if (!block)
      return std::nullopt;
    switch (block.getBlock()) {
    case gpu::MappingId::DimX:
      dims.push_back(0);
      break;
    case gpu::MappingId::DimY:
      dims.push_back(1);
      break;
    case gpu::MappingId::DimZ:
      dims.push_back(2);
      break;
    default:
      return std::nullopt;
    }
  }
  return dims;
}

/// Whether `op` is a one-dimensional loop on #gpu.thread<x> or
/// #gpu.thread<linear_dim_0> (the block is one-dimensional).
bool isThreadLoop(scf::ForallOp op) {
  std::optional<ArrayAttr> mapping = op.getMapping();
  if (!mapping || mapping->size() != 1 || op.getRank() != 1)
    return false;
  auto thread = dyn_cast<gpu::GPUThreadMappingAttr>((*mapping)[0]);
  return thread && (thread.getThread() == gpu::MappingId::DimX ||
                    thread.getThread() == gpu::MappingId::LinearDim0);
}

bool isWorkgroup(MemRefType type) {
  auto space = dyn_cast_or_null<gpu::AddressSpaceAttr>(type.getMemorySpace());
  return space && space.getValue() == gpu::AddressSpace::Workgroup;
}

struct MapForallToGPUPass
    : public moka::impl::MapForallToGPUPassBase<MapForallToGPUPass> {
  LogicalResult map(scf::ForallOp op) {
    std::optional<SmallVector<unsigned>> dims = blockDims(op);
    if (!dims)
      return success();
    if (op->getParentOfType<gpu::LaunchOp>())
      return op.emitError("moka-map-forall-to-gpu: a block loop inside a "
                          "kernel");
    if (op.getNumResults() != 0 || !op.isNormalized())
      return op.emitError("moka-map-forall-to-gpu: block loops must be on "
                          "buffers, from 0 with step 1");
    SmallVector<unsigned> sortedDims(*dims);
    llvm::sort(sortedDims);
    if (!llvm::equal(sortedDims, llvm::seq<unsigned>(0, dims->size())))
      return op.emitError("moka-map-forall-to-gpu: block loops must map to "
                          "distinct dimensions from x on");

    // Threads per block: the most any nested thread loop takes.
    int64_t threads = 1;
    WalkResult walk = op.getBody()->walk([&](scf::ForallOp nested) {
      std::optional<SmallVector<int64_t>> sizes =
          getConstantIntValues(nested.getMixedUpperBound());
      if (!sizes) {
        nested.emitError("moka-map-forall-to-gpu: thread loops must have "
                         "static sizes");
        return WalkResult::interrupt();
      }
      if (!isThreadLoop(nested)) {
        nested.emitError("moka-map-forall-to-gpu: thread loops must be "
                         "one-dimensional, on #gpu.thread<x> or "
                         "<linear_dim_0>");
        return WalkResult::interrupt();
      }
      if (nested->getParentOfType<scf::ForallOp>() != op) {
        nested.emitError("moka-map-forall-to-gpu: thread loops must not "
                         "nest");
        return WalkResult::interrupt();
      }
      threads = std::max(threads, llvm::product_of(*sizes));
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return failure();
    // Outside thread loops, every thread of the block runs the code: a
    // write there would race with the other threads.
    WalkResult writes =
        op.getBody()->walk<WalkOrder::PreOrder>([&](Operation *inner) {
          if (isa<scf::ForallOp>(inner))
            return WalkResult::skip();
          // Branches and loops: their bodies' ops are checked one by one.
          if (inner->getNumRegions() != 0)
            return WalkResult::advance();
          auto effects = dyn_cast<MemoryEffectOpInterface>(inner);
          if (effects && effects.hasEffect<MemoryEffects::Write>()) {
            inner->emitError("moka-map-forall-to-gpu: a write in a block loop "
                             "outside its thread loops");
            return WalkResult::interrupt();
          }
          return WalkResult::advance();
        });
    if (writes.wasInterrupted())
      return failure();
    if (threads > kMaxThreads)
      return op.emitError("moka-map-forall-to-gpu: ")
             << threads << " threads per block (at most " << kMaxThreads << ")";

    IRRewriter rewriter(op.getContext());
    rewriter.setInsertionPoint(op);
    Location loc = op.getLoc();
    Value one = arith::ConstantIndexOp::create(rewriter, loc, 1);
    SmallVector<Value> grid(3, one);
    SmallVector<Value> sizes =
        getValueOrCreateConstantIndexOp(rewriter, loc, op.getMixedUpperBound());
    for (auto [dim, size] : llvm::zip(*dims, sizes))
      grid[dim] = size;
    SmallVector<Type> workgroup;
    SmallVector<memref::AllocaOp> buffers;
    for (auto alloca : op.getBody()->getOps<memref::AllocaOp>())
      if (isWorkgroup(alloca.getType())) {
        buffers.push_back(alloca);
        workgroup.push_back(alloca.getType());
      }
    // Workgroup buffers anywhere else in the loop would be per thread.
    WalkResult nestedBuffer = op.getBody()->walk([&](memref::AllocaOp a) {
      if (isWorkgroup(a.getType()) && !llvm::is_contained(buffers, a)) {
        a.emitError("moka-map-forall-to-gpu: workgroup buffers must be "
                    "allocated at the top of the block loop");
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (nestedBuffer.wasInterrupted())
      return failure();

    Value threadCount = arith::ConstantIndexOp::create(rewriter, loc, threads);
    auto launch = gpu::LaunchOp::create(rewriter, loc, grid[0], grid[1],
                                        grid[2], threadCount, one, one,
                                        /*dynamicSharedMemorySize=*/nullptr,
                                        /*asyncTokenType=*/nullptr,
                                        /*asyncDependencies=*/{}, workgroup);
    Block &body = launch.getBody().front();
    rewriter.setInsertionPointToEnd(&body);
    auto terminator = gpu::TerminatorOp::create(rewriter, loc);
    for (auto [alloca, arg] :
         llvm::zip(buffers, launch.getWorkgroupAttributions())) {
      rewriter.replaceAllUsesWith(alloca.getResult(), arg);
      rewriter.eraseOp(alloca);
    }
    gpu::KernelDim3 ids = launch.getBlockIds();
    Value blockIds[] = {ids.x, ids.y, ids.z};
    SmallVector<Value> replacements;
    for (unsigned dim : *dims)
      replacements.push_back(blockIds[dim]);
    // The loop's body without its (empty) in_parallel terminator.
    rewriter.eraseOp(op.getTerminator());
    rewriter.inlineBlockBefore(op.getBody(), terminator, replacements);
    rewriter.eraseOp(op);

    rewriter.setInsertionPointToStart(&body);
    DiagnosedSilenceableFailure mapped =
        transform::gpu::mapNestedForallToThreadsImpl(
            rewriter, std::nullopt, launch, {threads, 1, 1}, kWarp,
            /*syncAfterDistribute=*/true);
    if (!mapped.succeeded()) {
      (void)mapped.silence();
      return launch.emitError("moka-map-forall-to-gpu: the thread loops "
                              "could not be mapped to threads");
    }
    return success();
  }

  void runOnOperation() override {
    SmallVector<scf::ForallOp> roots;
    WalkResult nested = getOperation().walk([&](scf::ForallOp op) {
      if (!op->getParentOfType<scf::ForallOp>() &&
          !op->getParentOfType<scf::ParallelOp>()) {
        roots.push_back(op);
        return WalkResult::advance();
      }
      // A kernel cannot be launched from another kernel's threads.
      if (blockDims(op)) {
        op.emitError("moka-map-forall-to-gpu: a block loop nested in a "
                     "parallel loop");
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (nested.wasInterrupted())
      return signalPassFailure();
    for (scf::ForallOp op : roots)
      if (failed(map(op)))
        return signalPassFailure();
  }
};

} // namespace
