//===- CopyGlobals.cpp - Globals as copies in allocated buffers -----------===//
//
// Each memref.get_global becomes a buffer holding a copy of the global, so
// that kernels, which cannot read host globals, reach the data, and the
// copy is freed by buffer deallocation like any other buffer.
//
//===----------------------------------------------------------------------===//

#include "moka/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

namespace moka {
#define GEN_PASS_DEF_COPYGLOBALSPASS
#include "moka/Transforms/Passes.h.inc"
} // namespace moka

using namespace mlir;

namespace {

struct CopyGlobalsPass
    : public moka::impl::CopyGlobalsPassBase<CopyGlobalsPass> {
  void runOnOperation() override {
    SmallVector<memref::GetGlobalOp> globals;
    getOperation().walk([&](memref::GetGlobalOp op) { globals.push_back(op); });
    for (memref::GetGlobalOp global : globals) {
      auto type = cast<MemRefType>(global.getType());
      if (!type.getLayout().isIdentity() || !type.hasStaticShape())
        continue;
      OpBuilder b(global);
      b.setInsertionPointAfter(global);
      auto copy = memref::AllocOp::create(b, global.getLoc(), type);
      global.getResult().replaceAllUsesWith(copy.getResult());
      memref::CopyOp::create(b, global.getLoc(), global.getResult(),
                             copy.getResult());
    }
  }
};

} // namespace
