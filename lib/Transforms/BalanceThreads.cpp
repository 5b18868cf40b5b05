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

/// True unless `loop` is known to run exactly once (a leftover of vector
/// lowering that the canonicalizer removes later).
bool iterates(scf::ForOp loop) {
  std::optional<APInt> trips = loop.getStaticTripCount();
  return !trips || trips->ugt(1);
}

/// Depth of the deepest nest of iterating scf.for loops inside `op`.
unsigned loopDepth(Operation *op) {
  unsigned depth = 0;
  op->walk([&](scf::ForOp loop) {
    unsigned d = 0;
    for (Operation *p = loop; p && p != op; p = p->getParentOp())
      if (auto f = dyn_cast<scf::ForOp>(p); f && iterates(f))
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
