//===- GPUKernelBuilder.h - Loops mapped to GPU blocks and threads -*- C++ -*-//
//
// Helpers that build GPU kernels as loops on buffers: an scf.forall over
// blocks (`#gpu.block<x|y|z>`) whose body allocates tiles in workgroup
// memory and runs `#gpu.thread<linear_dim_0>` foralls one after another.
// moka-map-forall-to-gpu turns them into gpu.launch (a barrier after each
// thread loop). With the tiles in default memory instead, the same loops
// run on a CPU, each thread loop to completion before the next: the form
// the tests check against float64 on machines without a GPU. That form
// runs a thread loop's iterations in reverse order, so that a kernel whose
// iterations depend on one another (which a GPU would not honour) fails
// there too.
//
// Rules a kernel keeps (the barriers are block-wide): every thread of a
// block reaches every thread loop (branches and loops around thread loops
// have the same conditions and bounds in a whole block); thread loops do
// not nest; code outside thread loops does not write memory.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_CONVERSION_UTILS_GPUKERNELBUILDER_H
#define MOKA_CONVERSION_UTILS_GPUKERNELBUILDER_H

#include "mlir/IR/Builders.h"

namespace moka {

struct GPUKernelBuilder {
  mlir::OpBuilder &b;
  mlir::Location loc;
  /// Tiles in GPU workgroup memory; else in default memory (the CPU form).
  bool workgroupMemory;
  /// Threads of each thread loop.
  int64_t threadCount = 256;

  mlir::Value index(int64_t v);
  mlir::Value f32(double v);
  mlir::Value add(mlir::Value x, mlir::Value y);
  mlir::Value mul(mlir::Value x, mlir::Value y);
  mlir::Value divConst(mlir::Value x, int64_t y);
  mlir::Value remConst(mlir::Value x, int64_t y);
  /// Unsigned x < y on indices.
  mlir::Value less(mlir::Value x, mlir::Value y);
  mlir::Value both(mlir::Value x, mlir::Value y);
  /// max(ceil(x / tile), 1): a grid dimension (a launch without blocks is
  /// an error, so there is always one).
  mlir::Value tiles(mlir::Value x, int64_t tile);

  /// Ranked tensor `t` as a read-only buffer of any layout.
  mlir::Value readBuffer(mlir::Value t);
  /// The integer element of `buf` at `ivs` as an index.
  mlir::Value loadIndex(mlir::Value buf, mlir::ValueRange ivs);
  /// The element of `buf` at `ivs` converted to f32.
  mlir::Value loadF32(mlir::Value buf, mlir::ValueRange ivs);
  /// `cond ? load() : 0.0f`, evaluating `load` only when `cond` holds.
  mlir::Value loadOrZero(mlir::Value cond,
                         llvm::function_ref<mlir::Value()> load);

  /// An scf.forall over blocks of `sizes` (at most 3; mapped to x, y, z in
  /// order) at the insertion point, with the insertion point left in its
  /// body; the block ids are returned.
  llvm::SmallVector<mlir::Value> blocks(llvm::ArrayRef<mlir::Value> sizes);
  /// An f32 tile of `shape` for the block, in workgroup memory (an alloca
  /// in the workgroup address space, which moka-map-forall-to-gpu turns into
  /// the launch's workgroup buffer) or, in the CPU form, a heap buffer per
  /// block. Tiles must be allocated directly in the block loop's body.
  mlir::Value tile(llvm::ArrayRef<int64_t> shape);
  /// A thread loop: `body(t)` for t in [0, threadCount) (in reverse order in
  /// the CPU form).
  void threads(llvm::function_ref<void(mlir::Value)> body);
  /// `body(q)` for q in [0, count), a sequential loop.
  void repeat(int64_t count, llvm::function_ref<void(mlir::Value)> body);
  /// `body()` when `cond` holds.
  void when(mlir::Value cond, llvm::function_ref<void()> body);

  // Products of kTile x kTile output tiles, accumulated in workgroup tiles
  // `[kTile, kTile]` by 256 threads (threadCount must be kSide * kSide):
  // thread t owns the kMicro x kMicro outputs at rows t / kSide + kSide i
  // and columns t % kSide + kSide j, so a warp touches consecutive words.
  static constexpr int64_t kTile = 64, kSide = 16, kMicro = kTile / kSide;

  /// A thread loop zeroing the accumulator tiles `accs`.
  void zeroTiles(llvm::ArrayRef<mlir::Value> accs);
  /// A thread loop adding to each `accs[p]` the products of `steps` staged
  /// steps: acc[row][col] += sum_s lhs[s][row] * rhs[p][s][col]. A thread's
  /// outputs stay in registers during the loop over the steps.
  void accumulateTiles(int64_t steps, mlir::Value lhs,
                       llvm::ArrayRef<mlir::Value> rhs,
                       llvm::ArrayRef<mlir::Value> accs);
  /// A thread loop calling `body(row, col)` for every output a thread owns.
  void
  forEachOwnedOutput(llvm::function_ref<void(mlir::Value, mlir::Value)> body);
};

} // namespace moka

#endif // MOKA_CONVERSION_UTILS_GPUKERNELBUILDER_H
