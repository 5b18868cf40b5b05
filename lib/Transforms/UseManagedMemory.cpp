//===- UseManagedMemory.cpp - Host buffers in CUDA managed memory ---------===//
//
// Host-side allocations become managed allocations, which both the host
// code and the kernels it launches can dereference.
//
//===----------------------------------------------------------------------===//

#include "moka/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

namespace moka {
#define GEN_PASS_DEF_USEMANAGEDMEMORYPASS
#include "moka/Transforms/Passes.h.inc"
} // namespace moka

using namespace mlir;

namespace {

bool onHost(Operation *op) {
  return !op->getParentOfType<gpu::LaunchOp>() &&
         !op->getParentOfType<gpu::GPUFuncOp>();
}

struct UseManagedMemoryPass
    : public moka::impl::UseManagedMemoryPassBase<UseManagedMemoryPass> {
  void runOnOperation() override {
    SmallVector<Operation *> ops;
    getOperation().walk([&](Operation *op) {
      if (isa<memref::AllocOp, memref::DeallocOp>(op) && onHost(op))
        ops.push_back(op);
    });
    for (Operation *op : ops) {
      OpBuilder b(op);
      Location loc = op->getLoc();
      if (auto alloc = dyn_cast<memref::AllocOp>(op)) {
        auto managed = gpu::AllocOp::create(
            b, loc, alloc.getType(), /*asyncToken=*/Type(),
            /*asyncDependencies=*/ValueRange(), alloc.getDynamicSizes(),
            alloc.getSymbolOperands(), /*hostShared=*/true);
        alloc.replaceAllUsesWith(managed.getMemref());
        alloc.erase();
      } else if (auto dealloc = dyn_cast<memref::DeallocOp>(op)) {
        // The runtime lowering of gpu.dealloc takes the asynchronous form:
        // free on a fresh stream and wait for it.
        Type token = gpu::AsyncTokenType::get(b.getContext());
        Value start =
            gpu::WaitOp::create(b, loc, token, ValueRange()).getAsyncToken();
        Value done = gpu::DeallocOp::create(b, loc, token, ValueRange{start},
                                            dealloc.getMemref())
                         .getAsyncToken();
        gpu::WaitOp::create(b, loc, Type(), ValueRange{done});
        dealloc.erase();
      }
    }
  }
};

} // namespace
