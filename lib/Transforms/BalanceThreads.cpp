//===- BalanceThreads.cpp - Dynamic schedules for heavy OpenMP loops ------===//
//
// Sets a dynamic schedule on OpenMP work-sharing loops whose iterations are
// whole tiles.
//
//===----------------------------------------------------------------------===//

#include "moka/Transforms/Passes.h"

#include "mlir/Dialect/OpenMP/OpenMPDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

namespace moka {
#define GEN_PASS_DEF_BALANCETHREADSPASS
#include "moka/Transforms/Passes.h.inc"
} // namespace moka

using namespace mlir;

namespace {

/// Depth of the deepest scf.for nest inside `op`.
unsigned loopDepth(Operation *op) {
  unsigned depth = 0;
  op->walk([&](scf::ForOp loop) {
    unsigned d = 0;
    for (Operation *p = loop; p && p != op; p = p->getParentOp())
      if (isa<scf::ForOp>(p))
        ++d;
    depth = std::max(depth, d);
  });
  return depth;
}

struct BalanceThreadsPass
    : moka::impl::BalanceThreadsPassBase<BalanceThreadsPass> {
  void runOnOperation() override {
    getOperation()->walk([](omp::WsloopOp loop) {
      if (loop.getScheduleKind() || loopDepth(loop) < 2)
        return;
      loop.setScheduleKind(omp::ClauseScheduleKind::Dynamic);
    });
  }
};

} // namespace
