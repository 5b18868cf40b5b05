//===- TileAndVectorize.cpp - Thread and vector tiling for CPUs -----------===//
//
// Distributes all-parallel linalg ops over threads with scf.forall, tiles each
// thread's share for the SIMD units and vectorizes the tiles.
//
//===----------------------------------------------------------------------===//

#include "moka/Transforms/Passes.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/Vector/Transforms/LoweringPatterns.h"
#include "mlir/Dialect/Vector/Transforms/VectorRewritePatterns.h"
#include "mlir/Interfaces/TilingInterface.h"
#include "mlir/Interfaces/VectorInterfaces.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#define DEBUG_TYPE "moka-tile-and-vectorize"

namespace moka {
#define GEN_PASS_DEF_TILEANDVECTORIZEPASS
#include "moka/Transforms/Passes.h.inc"
} // namespace moka

using namespace mlir;

namespace {

bool isAllParallel(linalg::LinalgOp op) {
  return op.hasPureTensorSemantics() && op.getNumLoops() > 0 &&
         op.getNumParallelLoops() == op.getNumLoops();
}

bool isCandidate(linalg::LinalgOp op) {
  if (!op.hasPureTensorSemantics() || op.getNumLoops() == 0)
    return false;
  // A loop of static size 0: nothing to tile (tile sizes cannot be derived
  // from it) and nothing to compute; the bufferized loop nest runs no
  // iteration.
  return !llvm::is_contained(op.getStaticLoopRanges(), 0);
}

bool isInsideForall(Operation *op) {
  return op->getParentOfType<scf::ForallOp>() != nullptr;
}

/// Register tile of a contraction: rows x output columns of accumulators.
/// 8 x 32 f32 is 16 AVX-512 registers (or 32 AVX2 ones), leaving room for
/// the broadcast row values and the two weight vectors of each step.
constexpr int64_t kContractionRows = 8;
constexpr int64_t kContractionCols = 32;
/// Reduction block: 256 steps of a 32-column weight panel are 32 KiB, an L1
/// data cache.
constexpr int64_t kContractionDepth = 256;

/// The loops of a contraction that has an outer-product register tile: the
/// output's innermost dimension `col` is a parallel loop (contiguous in the
/// output), `row` the parallel loop of the output's next dimension.
struct ContractionLoops {
  unsigned row;
  unsigned col;
  SmallVector<unsigned> reductions;
};

std::optional<ContractionLoops> matchContraction(linalg::LinalgOp op) {
  if (!op.hasPureTensorSemantics() || op.getNumDpsInits() != 1 ||
      op.getNumDpsInputs() != 2 || op.getNumReductionLoops() == 0)
    return std::nullopt;
  AffineMap out = op.getMatchingIndexingMap(op.getDpsInitOperand(0));
  if (!out.isProjectedPermutation() || out.getNumResults() < 2)
    return std::nullopt;
  SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
  // Columns: the output's innermost dimension. Rows: the innermost output
  // dimension that also indexes the first input (the activation), so that a
  // panel index of packed weights is not taken for rows.
  AffineMap lhs = op.getMatchingIndexingMap(op.getDpsInputOperand(0));
  ContractionLoops loops;
  loops.col = out.getDimPosition(out.getNumResults() - 1);
  std::optional<unsigned> row;
  for (unsigned r = 0; r + 1 < out.getNumResults(); ++r) {
    unsigned d = out.getDimPosition(r);
    if (lhs.isFunctionOfDim(d))
      row = d;
  }
  if (!row || lhs.isFunctionOfDim(loops.col))
    return std::nullopt;
  loops.row = *row;
  for (auto [i, it] : llvm::enumerate(iterators))
    if (linalg::isReductionIterator(it))
      loops.reductions.push_back(i);
  return loops;
}

/// Side of the square tiles in which a transpose is copied: 16 x 16 f32 is 16
/// AVX-512 registers, transposed in registers by shuffles.
constexpr int64_t kTransposeTile = 16;

/// For an all-parallel copy whose output's innermost loop reads a different
/// loop's dimension innermost in the input (a transpose), the pair (output
/// innermost loop, loop of the input's innermost dimension).
std::optional<std::pair<unsigned, unsigned>>
matchTranspose(linalg::LinalgOp op) {
  if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 1 ||
      op.getNumDpsInits() != 1 || op.getNumLoops() < 2 ||
      op.getNumParallelLoops() != op.getNumLoops())
    return std::nullopt;
  if (!isa<linalg::TransposeOp>(op.getOperation())) {
    auto generic = dyn_cast<linalg::GenericOp>(op.getOperation());
    if (!generic)
      return std::nullopt;
    Block &body = generic.getRegion().front();
    auto yield = cast<linalg::YieldOp>(body.getTerminator());
    if (body.getOperations().size() != 1 ||
        yield.getOperand(0) != body.getArgument(0))
      return std::nullopt;
  }
  AffineMap in = op.getMatchingIndexingMap(op.getDpsInputOperand(0));
  AffineMap out = op.getMatchingIndexingMap(op.getDpsInitOperand(0));
  if (!in.isPermutation() || !out.isPermutation())
    return std::nullopt;
  unsigned a = out.getDimPosition(out.getNumResults() - 1);
  unsigned b = in.getDimPosition(in.getNumResults() - 1);
  if (a == b)
    return std::nullopt;
  return std::make_pair(a, b);
}

/// Tiles `op` with `tileSizes` (0: not tiled) and replaces it; returns the
/// tiled operation.
FailureOr<linalg::LinalgOp> tile(RewriterBase &rewriter, linalg::LinalgOp op,
                                 ArrayRef<int64_t> tileSizes,
                                 scf::SCFTilingOptions::LoopType loopType,
                                 ArrayRef<int64_t> interchange = {}) {
  scf::SCFTilingOptions options;
  options.setLoopType(loopType);
  if (!interchange.empty())
    options.setInterchange(interchange);
  options.setTileSizes(
      getAsIndexOpFoldResult(rewriter.getContext(), tileSizes));
  rewriter.setInsertionPoint(op);
  FailureOr<scf::SCFTilingResult> tiled = scf::tileUsingSCF(
      rewriter, cast<TilingInterface>(op.getOperation()), options);
  if (failed(tiled) || tiled->tiledOps.size() != 1)
    return op.emitOpError("moka-tile-and-vectorize: tiling failed");
  rewriter.replaceOp(op, tiled->replacements);
  auto tiledOp = dyn_cast<linalg::LinalgOp>(tiled->tiledOps.front());
  if (!tiledOp)
    return op.emitOpError(
        "moka-tile-and-vectorize: tiling produced no linalg op");
  return tiledOp;
}

/// Drops the unit loops of a register tile (generalizing a named op first);
/// returns the new op, or failure (nothing changed) if there are none.
FailureOr<linalg::LinalgOp> dropUnitLoops(RewriterBase &rewriter,
                                          linalg::LinalgOp op) {
  if (llvm::none_of(op.getStaticLoopRanges(), [](int64_t r) { return r == 1; }))
    return failure();
  rewriter.setInsertionPoint(op);
  auto generic = dyn_cast<linalg::GenericOp>(op.getOperation());
  if (!generic) {
    FailureOr<linalg::GenericOp> g = linalg::generalizeNamedOp(rewriter, op);
    if (failed(g))
      return failure();
    generic = *g;
  }
  // A contraction may fuse its multiply and add (named ops carry no flags).
  // A named contraction (matmul and kin) carries no flags of its own; it may
  // fuse its multiply and add. A generic keeps the flags its author gave it.
  if (generic.getOperation() != op.getOperation())
    generic.getRegion().walk([](arith::ArithFastMathInterface fm) {
      if (isa<arith::MulFOp, arith::AddFOp>(fm.getOperation()))
        fm->setAttr(fm.getFastMathAttrName(),
                    arith::FastMathFlagsAttr::get(
                        fm->getContext(), fm.getFastMathFlagsAttr().getValue() |
                                              arith::FastMathFlags::contract));
    });
  linalg::ControlDropUnitDims control;
  control.rankReductionStrategy =
      linalg::ControlDropUnitDims::RankReductionStrategy::ExtractInsertSlice;
  FailureOr<linalg::DropUnitDimsResult> result =
      linalg::dropUnitDims(rewriter, generic, control);
  if (failed(result))
    return linalg::LinalgOp(generic);
  rewriter.replaceOp(generic, result->replacements);
  return cast<linalg::LinalgOp>(result->resultOp.getOperation());
}

struct TileAndVectorizePass
    : moka::impl::TileAndVectorizePassBase<TileAndVectorizePass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    peelCandidates.clear();
    // Beyond 1024 elements a "vector" is no longer one in the registers,
    // and LLVM's code generation time grows without bound.
    if (vectorSize < 1 || vectorSize > 1024) {
      func.emitError() << "moka-tile-and-vectorize: vector-size must be "
                          "between 1 and 1024 elements, not "
                       << static_cast<int64_t>(vectorSize);
      return signalPassFailure();
    }
    SmallVector<linalg::LinalgOp> candidates;
    func.walk([&](linalg::LinalgOp op) {
      if (isCandidate(op))
        candidates.push_back(op);
    });

    IRRewriter rewriter(&getContext());
    for (linalg::LinalgOp op : candidates)
      if (failed(schedule(rewriter, op)))
        return signalPassFailure();

    // Partial register tiles are split off so that full ones vectorize
    // without masks (masked accumulators would not be hoisted into
    // registers); the canonicalizer then gives the full tiles static shapes.
    SmallVector<scf::ForOp> toPeel = std::move(peelCandidates);
    peelCandidates.clear();
    for (scf::ForOp loop : toPeel) {
      scf::ForOp partial;
      (void)scf::peelForLoopAndSimplifyBounds(rewriter, loop, partial);
    }
    RewritePatternSet patterns(&getContext());
    for (Dialect *dialect : getContext().getLoadedDialects())
      dialect->getCanonicalizationPatterns(patterns);
    for (RegisteredOperationName op : getContext().getRegisteredOperations())
      op.getCanonicalizationPatterns(patterns, &getContext());
    if (failed(applyPatternsGreedily(func, std::move(patterns))))
      return signalPassFailure();

    SmallVector<linalg::LinalgOp> tiles;
    func.walk([&](linalg::LinalgOp op) {
      if (isCandidate(op))
        tiles.push_back(op);
    });
    for (linalg::LinalgOp op : tiles) {
      // Clamp the vector shape to the tile's static extent so a small static
      // innermost dimension does not get an oversized, fully masked vector.
      SmallVector<int64_t> ranges = op.getStaticLoopRanges();
      SmallVector<int64_t> vecSizes(ranges.size(), 1);
      if (std::optional<ContractionLoops> c = matchContraction(op)) {
        vecSizes[c->row] = kContractionRows;
        vecSizes[c->col] = kContractionCols;
        // The register tile's unit loops (the reduction step, outer rows) are
        // dropped first: the tile becomes an element-wise rows x columns
        // update, whose vectors are whole rows of output columns rather than
        // n-D vectors with a trailing unit dimension.
        FailureOr<linalg::LinalgOp> reduced = dropUnitLoops(rewriter, op);
        if (succeeded(reduced)) {
          SmallVector<int64_t> kept;
          for (auto [i, r] : llvm::enumerate(ranges))
            if (r != 1)
              kept.push_back(vecSizes[i]);
          op = *reduced;
          ranges = op.getStaticLoopRanges();
          if (ranges.size() == kept.size())
            vecSizes = kept;
        }
      } else if (std::optional<std::pair<unsigned, unsigned>> t =
                     matchTranspose(op)) {
        vecSizes[t->first] = kTransposeTile;
        vecSizes[t->second] = kTransposeTile;
      } else {
        vecSizes.back() = vectorSize;
      }
      bool needsMask = false;
      for (auto [i, r] : llvm::enumerate(ranges)) {
        if (ShapedType::isDynamic(r)) {
          needsMask = true;
          continue;
        }
        vecSizes[i] = std::min(vecSizes[i], r);
      }
      rewriter.setInsertionPoint(op);
      // The scalable flags must be spelled out: an empty list yields mask
      // types that differ from the transfer ops' expected (non-scalable) ones.
      SmallVector<bool> scalable(vecSizes.size(), false);
      FailureOr<linalg::VectorizationResult> result =
          needsMask ? linalg::vectorize(rewriter, op, vecSizes, scalable)
                    : linalg::vectorize(rewriter, op);
      // A body the vectorizer cannot handle stays a scalar tile; the
      // pipeline lowers it to loops, which is slower but correct.
      if (succeeded(result))
        rewriter.replaceOp(op, result->replacements);
    }

    // n-D vectors are unrolled into rows of their innermost dimension: a
    // register tile's operand that is broadcast along the rows becomes one
    // scalar load and broadcast per row instead of a strided gather.
    // Transposing reads first become plain reads and a vector.transpose,
    // which stays a 2-D transpose in registers.
    {
      RewritePatternSet permutations(&getContext());
      vector::populateVectorTransferPermutationMapLoweringPatterns(
          permutations);
      vector::populateCastAwayVectorLeadingOneDimPatterns(permutations);
      if (failed(applyPatternsGreedily(func, std::move(permutations))))
        return signalPassFailure();
    }
    RewritePatternSet unroll(&getContext());
    vector::populateVectorUnrollPatterns(
        unroll,
        vector::UnrollVectorOptions()
            .setFilterConstraint([](Operation *op) {
              // A vector.mask region holds exactly one op; a transpose is
              // lowered whole, by shuffles.
              return success(!isa<vector::MaskOp>(op->getParentOp()) &&
                             !isa<vector::TransposeOp>(op));
            })
            .setNativeShapeFn(
                [](Operation *op) -> std::optional<SmallVector<int64_t>> {
                  auto unrollable = dyn_cast<VectorUnrollOpInterface>(op);
                  if (!unrollable)
                    return std::nullopt;
                  std::optional<SmallVector<int64_t>> shape =
                      unrollable.getShapeForUnroll();
                  // Only vectors whose rows are real vectors: a trailing
                  // unit dimension would be unrolled into scalars.
                  if (!shape || shape->size() < 2 || shape->back() == 1)
                    return std::nullopt;
                  SmallVector<int64_t> rows(shape->size(), 1);
                  rows.back() = shape->back();
                  if (rows == *shape)
                    return std::nullopt;
                  return rows;
                }));
    vector::populateVectorTransferPermutationMapLoweringPatterns(unroll);
    if (failed(applyPatternsGreedily(func, std::move(unroll))))
      return signalPassFailure();
  }

  /// Distributes `op` over threads (when large enough) and tiles it for
  /// vectors; returns the innermost tile.
  FailureOr<linalg::LinalgOp> schedule(RewriterBase &rewriter,
                                       linalg::LinalgOp op) {
    if (std::optional<ContractionLoops> c = matchContraction(op))
      return scheduleContraction(rewriter, op, *c);
    if (std::optional<std::pair<unsigned, unsigned>> t = matchTranspose(op))
      return scheduleTranspose(rewriter, op, t->first, t->second);
    unsigned rank = op.getNumLoops();
    int64_t staticSize = 1;
    bool dynamic = false;
    for (int64_t r : op.getStaticLoopRanges()) {
      if (ShapedType::isDynamic(r))
        dynamic = true;
      else
        staticSize *= r;
    }

    linalg::LinalgOp current = op;
    // Ops already inside an scf.forall (fused tiles) run on the thread that
    // owns the tile. Reductions are distributed over their parallel loops
    // only.
    bool allParallel = isAllParallel(op);
    if (!isInsideForall(op) && (dynamic || staticSize >= minParallelSize) &&
        (allParallel || op.getNumParallelLoops() > 0)) {
      // One innermost row per iteration of an n-D forall; OpenMP's static
      // schedule over the collapsed loop nest later hands each thread one
      // contiguous block of rows. A rank-1 op is cut into chunks of whole
      // vectors instead.
      SmallVector<int64_t> threadTiles(rank, 1);
      threadTiles.back() = rank == 1 ? 64 * vectorSize : 0;
      if (!allParallel) {
        SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
        for (unsigned i = 0; i < rank; ++i)
          if (!linalg::isParallelIterator(iterators[i]))
            threadTiles[i] = 0;
      }
      FailureOr<linalg::LinalgOp> tiled =
          tile(rewriter, current, threadTiles,
               scf::SCFTilingOptions::LoopType::ForallOp);
      if (failed(tiled))
        return failure();
      current = *tiled;
    }

    // A static innermost extent smaller than the vector is taken whole.
    SmallVector<int64_t> vectorTiles(rank, 1);
    int64_t inner = current.getStaticLoopRanges().back();
    vectorTiles.back() = ShapedType::isDynamic(inner)
                             ? vectorSize
                             : std::min<int64_t>(vectorSize, inner);
    return tile(rewriter, current, vectorTiles,
                scf::SCFTilingOptions::LoopType::ForOp);
  }

  /// Outer-product schedule of a contraction: rows over threads (unless the
  /// op is already a fused tile), the first reduction loop in blocks of
  /// `kContractionDepth`, then for each column panel and row block a loop
  /// over the reduction with an 8 x 32 register tile of accumulators; the
  /// accumulators' reads and writes are hoisted out of that loop later.
  FailureOr<linalg::LinalgOp> scheduleContraction(RewriterBase &rewriter,
                                                  linalg::LinalgOp op,
                                                  const ContractionLoops &c) {
    unsigned rank = op.getNumLoops();
    SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
    linalg::LinalgOp current = op;
    if (!isInsideForall(op)) {
      SmallVector<int64_t> threadTiles(rank, 0);
      for (unsigned i = 0; i < rank; ++i)
        if (linalg::isParallelIterator(iterators[i]) && i != c.col)
          threadTiles[i] = 1;
      threadTiles[c.row] = 4 * kContractionRows;
      FailureOr<linalg::LinalgOp> tiled =
          tile(rewriter, current, threadTiles,
               scf::SCFTilingOptions::LoopType::ForallOp);
      if (failed(tiled))
        return failure();
      current = *tiled;
    }

    SmallVector<int64_t> depthTiles(rank, 0);
    depthTiles[c.reductions.front()] = kContractionDepth;
    FailureOr<linalg::LinalgOp> blocked = tile(
        rewriter, current, depthTiles, scf::SCFTilingOptions::LoopType::ForOp);
    if (failed(blocked))
      return failure();

    // Register tile; loops ordered (other parallel loops, columns, rows,
    // reductions) so that a weight panel stays in L1 across row blocks.
    SmallVector<int64_t> regTiles(rank, 1);
    regTiles[c.row] = kContractionRows;
    regTiles[c.col] = kContractionCols;
    SmallVector<int64_t> interchange;
    for (unsigned i = 0; i < rank; ++i)
      if (linalg::isParallelIterator(iterators[i]) && i != c.row && i != c.col)
        interchange.push_back(i);
    interchange.push_back(c.col);
    interchange.push_back(c.row);
    for (unsigned r : c.reductions)
      interchange.push_back(r);
    FailureOr<linalg::LinalgOp> tiled =
        tile(rewriter, *blocked, regTiles,
             scf::SCFTilingOptions::LoopType::ForOp, interchange);
    if (failed(tiled))
      return failure();
    // The column and row loops, outermost first.
    SmallVector<scf::ForOp> enclosing;
    for (Operation *p = (*tiled)->getParentOp(); p; p = p->getParentOp()) {
      auto loop = dyn_cast<scf::ForOp>(p);
      if (!loop)
        break;
      std::optional<int64_t> step = getConstantIntValue(loop.getStep());
      if (step && (*step == kContractionRows || *step == kContractionCols))
        enclosing.push_back(loop);
      if (step && *step == kContractionDepth)
        break;
    }
    peelCandidates.append(enclosing.rbegin(), enclosing.rend());
    return tiled;
  }

  /// A transpose in square tiles: threads over blocks of rows of the
  /// input's innermost dimension, then 16 x 16 tiles read as rows,
  /// transposed in registers and written as rows.
  FailureOr<linalg::LinalgOp> scheduleTranspose(RewriterBase &rewriter,
                                                linalg::LinalgOp op,
                                                unsigned outInner,
                                                unsigned inInner) {
    unsigned rank = op.getNumLoops();
    linalg::LinalgOp current = op;
    if (!isInsideForall(op)) {
      SmallVector<int64_t> threadTiles(rank, 1);
      threadTiles[outInner] = 0;
      threadTiles[inInner] = kTransposeTile;
      FailureOr<linalg::LinalgOp> tiled =
          tile(rewriter, current, threadTiles,
               scf::SCFTilingOptions::LoopType::ForallOp);
      if (failed(tiled))
        return failure();
      current = *tiled;
    }
    SmallVector<int64_t> tiles(rank, 1);
    tiles[outInner] = kTransposeTile;
    tiles[inInner] = kTransposeTile;
    return tile(rewriter, current, tiles,
                scf::SCFTilingOptions::LoopType::ForOp);
  }

  SmallVector<scf::ForOp> peelCandidates;
};

} // namespace
