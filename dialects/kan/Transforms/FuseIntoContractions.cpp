//===- FuseIntoContractions.cpp - KAN activations into matrix products ----===//
//
// Tiles contractions along their rows and fuses the element-wise KAN
// activations that feed them (prologue) or follow them (epilogue) into each
// tile with upstream tile-and-fuse.
//
//===----------------------------------------------------------------------===//

#include "moka/Dialect/KAN/IR/KANOps.h"
#include "moka/Dialect/KAN/Transforms/Passes.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/TilingInterface.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace moka::kan {
#define GEN_PASS_DEF_KANFUSEINTOCONTRACTIONSPASS
#include "moka/Dialect/KAN/Transforms/Passes.h.inc"
} // namespace moka::kan

using namespace mlir;
using namespace moka::kan;

namespace {

bool isContraction(Operation *op) {
  auto linalgOp = dyn_cast<linalg::LinalgOp>(op);
  return linalgOp && linalgOp.hasPureTensorSemantics() &&
         linalgOp.getNumReductionLoops() > 0;
}

/// Element-wise producers that may be recomputed per tile: the rational, and
/// all-parallel linalg ops (basis expansions, SiLU, broadcast bias, fills).
bool isElementwiseActivation(Operation *op) {
  if (isa<RationalOp>(op))
    return true;
  auto linalgOp = dyn_cast<linalg::LinalgOp>(op);
  return linalgOp && linalgOp.hasPureTensorSemantics() &&
         linalgOp.getNumLoops() == linalgOp.getNumParallelLoops();
}

/// True when `v` has exactly one use that is neither a `tensor.dim` (the
/// sizes that tiling queries resolve to the producer's operands afterwards)
/// nor an op in `ignored` (originals being replaced by their tiles).
bool hasOneRealUse(
    Value v, const llvm::SmallPtrSetImpl<Operation *> *ignored = nullptr) {
  int count = 0;
  for (Operation *user : v.getUsers())
    if (!isa<tensor::DimOp>(user) && !(ignored && ignored->contains(user)))
      ++count;
  return count == 1;
}

Operation *realUser(Value v) {
  for (Operation *user : v.getUsers())
    if (!isa<tensor::DimOp>(user))
      return user;
  return nullptr;
}

bool isInsideForall(Operation *op) {
  return op->getParentOfType<scf::ForallOp>() != nullptr;
}

/// Tile sizes that cut the row dimensions, the innermost of them by
/// `rowTile` and the others by one: for a contraction, the parallel loops
/// shared by the output and the activation operand; for a rational, every
/// dimension but the channels. Empty when there are no rows to cut.
SmallVector<int64_t> rowTileSizes(TilingInterface op, int64_t rowTile) {
  SmallVector<utils::IteratorType> iterators = op.getLoopIteratorTypes();
  SmallVector<int64_t> sizes(iterators.size(), 0);
  SmallVector<unsigned> rows;
  if (isa<RationalOp>(op)) {
    for (unsigned i = 0; i + 1 < iterators.size(); ++i)
      rows.push_back(i);
  } else {
    // Rows: the parallel loops that index both the output and the first
    // input (the activation). Loops over output channels only (including a
    // panel index of packed weights) are not cut.
    auto linalgOp = dyn_cast<linalg::LinalgOp>(op.getOperation());
    if (!linalgOp || linalgOp.getNumDpsInputs() == 0)
      return {};
    AffineMap lhs =
        linalgOp.getMatchingIndexingMap(linalgOp.getDpsInputOperand(0));
    AffineMap out =
        linalgOp.getMatchingIndexingMap(linalgOp.getDpsInitOperand(0));
    for (auto [i, it] : llvm::enumerate(iterators))
      if (it == utils::IteratorType::parallel && lhs.isFunctionOfDim(i) &&
          out.isFunctionOfDim(i))
        rows.push_back(i);
  }
  if (rows.empty())
    return {};
  for (unsigned r : rows)
    sizes[r] = 1;
  sizes[rows.back()] = rowTile;
  return sizes;
}

/// The op at the end of a fusable chain: a contraction not consumed by a
/// rational or another contraction, or a rational that follows a contraction
/// and is not itself consumed by one.
bool isRoot(Operation *op) {
  if (isInsideForall(op) || op->getNumResults() != 1)
    return false;
  auto fusesInto = [](Operation *user) {
    return isa<RationalOp>(user) || isContraction(user);
  };
  bool consumedByChain =
      hasOneRealUse(op->getResult(0)) && fusesInto(realUser(op->getResult(0)));
  if (isContraction(op))
    return !consumedByChain;
  if (auto rational = dyn_cast<RationalOp>(op)) {
    Operation *producer = rational.getInput().getDefiningOp();
    return producer && isContraction(producer) && !consumedByChain;
  }
  return false;
}

struct KANFuseIntoContractionsPass
    : moka::kan::impl::KANFuseIntoContractionsPassBase<
          KANFuseIntoContractionsPass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (rowTile < 1) {
      func.emitError("kan-fuse-into-contractions: row-tile must be >= 1");
      return signalPassFailure();
    }
    SmallVector<TilingInterface> roots;
    func.walk([&](TilingInterface op) {
      // A loop of static size 0 has no tiles (and nothing to fuse).
      auto linalgOp = dyn_cast<linalg::LinalgOp>(op.getOperation());
      if (linalgOp && llvm::is_contained(linalgOp.getStaticLoopRanges(), 0))
        return;
      if (isRoot(op))
        roots.push_back(op);
    });

    IRRewriter rewriter(&getContext());
    for (TilingInterface root : roots) {
      SmallVector<int64_t> sizes = rowTileSizes(root, rowTile);
      if (sizes.empty())
        continue;
      scf::SCFTilingOptions tiling;
      tiling.setLoopType(scf::SCFTilingOptions::LoopType::ForallOp);
      tiling.setTileSizes(getAsIndexOpFoldResult(&getContext(), sizes));
      scf::SCFTileAndFuseOptions options;
      options.setTilingOptions(tiling);
      llvm::SmallPtrSet<Operation *, 8> absorbed = {root.getOperation()};
      options.setFusionControlFn(
          [&absorbed](tensor::ExtractSliceOp slice, OpResult producer,
                      bool isDestination)
              -> std::optional<scf::SCFTileAndFuseOptions::ControlFnResult> {
            Operation *op = producer.getOwner();
            // Only producers whose values are used once, and only along the
            // rows: a slice at a constant offset (a weight) is not fused, or
            // every tile would recompute all of it.
            if (!hasOneRealUse(producer, &absorbed))
              return std::nullopt;
            if (llvm::all_of(slice.getMixedOffsets(), [](OpFoldResult o) {
                  return getConstantIntValue(o).has_value();
                }))
              return std::nullopt;
            if (isElementwiseActivation(op) || isContraction(op)) {
              absorbed.insert(op);
              return scf::SCFTileAndFuseOptions::ControlFnResult{};
            }
            return std::nullopt;
          });
      rewriter.setInsertionPoint(root);
      FailureOr<scf::SCFTileAndFuseResult> result =
          scf::tileConsumerAndFuseProducersUsingSCF(rewriter, root, options);
      if (failed(result)) {
        root.emitError("kan-fuse-into-contractions: tiling failed");
        return signalPassFailure();
      }
      for (OpResult res : root->getResults())
        if (Value repl = result->replacements.lookup(res))
          rewriter.replaceAllUsesWith(res, repl);
      rewriter.eraseOp(root);
    }

    // Sizes that tiling read off the fused producers now come from their
    // operands, leaving the untiled producers dead.
    RewritePatternSet patterns(&getContext());
    memref::populateResolveRankedShapedTypeResultDimsPatterns(patterns);
    if (failed(applyPatternsGreedily(func, std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
