//===- Passes.td - moka code generation passes -------------*- tablegen -*-===//
//
// Target-independent code generation passes of moka.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_TRANSFORMS_PASSES_TD
#define MOKA_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def TileAndVectorizePass : Pass<"moka-tile-and-vectorize", "mlir::func::FuncOp"> {
  let summary = "Tile linalg ops for threads, caches and registers, then vectorize";
  let description = [{
    Schedules every `linalg` operation on tensors for a multicore CPU with
    SIMD units.

    All-parallel (element-wise) operations:

    1. every dimension but the innermost is distributed with `scf.forall`,
       one innermost row per iteration (later an OpenMP work-sharing loop
       with a static schedule, so every thread gets one contiguous block of
       rows); a rank-1 operation is cut into chunks of 64 vectors;
    2. each row is tiled with `scf.for` to `vector-size` elements of the
       innermost dimension (1 along the others);
    3. each tile is vectorized with the upstream linalg vectorizer, with
       masks where the innermost extent is not a multiple of the vector size
       or is dynamic.

    Contractions (one output, two inputs, reduction loops), outer-product
    schedule: rows over threads unless the op is already inside an
    `scf.forall` (a fused tile); the first reduction loop in blocks of 256;
    then, for each 32-column panel and 8-row block, a loop over the
    reduction updating an 8 x 32 register tile. Partial tiles are peeled
    off, the tile's unit loops dropped, and n-D vectors unrolled into rows,
    so that the row operand becomes scalar broadcasts and the accumulators
    can be hoisted into registers (by `loop-invariant-subset-hoisting`).

    Transposes (all-parallel copies whose output's innermost loop is not the
    input's): 16 x 16 tiles over the two innermost loops, read as rows and
    transposed in registers.

    Other reductions: parallel loops over threads, every loop tiled by one
    except the innermost, vectorized (`vector.multi_reduction`).

    After vectorization, leading unit dimensions are folded away, transposing
    reads become row reads and a `vector.transpose`, and n-D vectors are
    unrolled into rows of their innermost dimension.

    Operations inside an `scf.forall` are not distributed again; operations
    whose iteration space is statically smaller than `min-parallel-size`
    elements are not distributed.
  }];
  let options = [
    Option<"vectorSize", "vector-size", "int64_t", /*default=*/"64",
           "Elements of the innermost dimension per vector tile">,
    Option<"minParallelSize", "min-parallel-size", "int64_t",
           /*default=*/"32768",
           "Smallest static iteration space distributed over threads">,
  ];
  let dependentDialects = [
    "mlir::affine::AffineDialect",
    "mlir::arith::ArithDialect",
    "mlir::scf::SCFDialect",
    "mlir::tensor::TensorDialect",
    "mlir::vector::VectorDialect",
  ];
}

def BalanceThreadsPass : Pass<"moka-balance-threads"> {
  let summary = "Schedule OpenMP loops over heavy tiles dynamically";
  let description = [{
    Gives every `omp.wsloop` whose iterations are loop nests of depth two or
    more (tiles of matrix products, blocks of rows of a gradient) a dynamic
    schedule: each thread takes the next tile when it finishes one, so a
    partial last tile or a thread slowed by the rest of the machine does not
    hold up the others. Loops over single rows of element-wise work (one
    inner loop per iteration) keep the static schedule, whose contiguous
    blocks of rows are better for memory streaming.
  }];
  let dependentDialects = ["mlir::omp::OpenMPDialect"];
}

def InsertShapeChecksPass : Pass<"moka-insert-shape-checks", "mlir::func::FuncOp"> {
  let summary = "Check at run time that dynamic dimensions of linalg operands agree";
  let description = [{
    A `linalg` operation requires every operand dimension indexed by the same
    loop to have the same size; with dynamic sizes nothing checks this and a
    mismatch reads or writes out of bounds. For each `linalg` operation on
    tensors that is not inside a loop, this pass adds a `cf.assert` per pair
    of such dimensions that are not statically equal, naming the operation
    and the dimensions. Operations inside loops (tiles of a fused operation)
    work on slices whose sizes the loop derives from checked dimensions.
  }];
  let dependentDialects = [
    "mlir::arith::ArithDialect",
    "mlir::cf::ControlFlowDialect",
    "mlir::tensor::TensorDialect",
  ];
}

def LowerRuntimeChecksPass : Pass<"moka-lower-runtime-checks", "mlir::ModuleOp"> {
  let summary = "Turn cf.assert into calls that report to the caller of a compiled library";
  let description = [{
    Replaces each `cf.assert %cond, "message"` by a call, when `%cond` is
    false, to the runtime function `mokaCheckFailed(const char *)` with the
    message. In libraries built by `mokac`, this returns
    MOKA_ERROR_RUNTIME_CHECK and the message to the caller instead of
    aborting the process (the upstream lowering prints and aborts). A check
    inside `scf.forall` / `scf.parallel` whose condition does not depend on
    the loop (only side-effect-free ops of values from outside it, e.g. a
    shape check of a fused tile) is first moved in front of the outermost
    such loop, with the ops computing its condition. Checks that depend on
    the iteration stay (they may run on worker threads, from which the
    runtime cannot return to the caller) and print and abort.
  }];
  let dependentDialects = [
    "mlir::LLVM::LLVMDialect",
    "mlir::scf::SCFDialect",
  ];
}

def LowerDynamicExpandShapePass : Pass<"moka-lower-dynamic-expand-shape"> {
  let summary = "memref.expand_shape with several dynamic sizes in a group as a reinterpret_cast";
  let description = [{
    `expand-strided-metadata` of LLVM 22 handles at most one dynamic size per
    reassociation group of `memref.expand_shape` (it crashes on more; fixed
    upstream after LLVM 22). This pass rewrites such ops, before that pass,
    into `memref.reinterpret_cast` of the source's base buffer: sizes from
    the op's `output_shape`, strides built outward from each group's source
    stride. Other expand_shape ops are left to the upstream pass.
  }];
  let dependentDialects = [
    "mlir::arith::ArithDialect",
    "mlir::memref::MemRefDialect",
  ];
}

def TileGPUContractionsPass : Pass<"moka-tile-gpu-contractions", "mlir::func::FuncOp"> {
  let summary = "Linalg contractions as GPU kernels with tiles in workgroup memory";
  let description = [{
    Each linalg op on tensors at the top level of a function whose body is
    `out + x * y` (f32 accumulation, inputs of any float type) and whose
    maps make it a contraction (`linalg::inferContractionDims`: every loop a
    row `m`, column `n`, reduction `k` or batch loop, each kind possibly
    several loops; projected permutations) becomes loops over GPU blocks
    (64-row tiles, 64-column tiles, batch) and 256-thread loops
    (GPUKernelBuilder): per step of 32 along the reduction, both operands'
    tiles are copied to workgroup memory (consecutive threads along the
    operand's innermost dimension: coalesced), then each thread adds the
    step's products to a 4 x 4 tile of outputs, in registers during the
    step and in workgroup memory between steps; the last loop writes
    `init + sum`. Batch loops must be static, 1 to 65535 in all. The
    operands' sizes are assumed to agree (moka-insert-shape-checks checks
    dynamic ones earlier in the pipelines). moka-map-forall-to-gpu makes
    the kernels. With `workgroup-memory=false` the tiles are in default
    memory and the loops run on a CPU.
  }];
  let options = [
    Option<"workgroupMemory", "workgroup-memory", "bool", /*default=*/"true",
           "Tiles in GPU workgroup memory (false: default memory, so that "
           "the same loops run on a CPU)">,
  ];
  let dependentDialects = [
    "mlir::arith::ArithDialect",
    "mlir::bufferization::BufferizationDialect",
    "mlir::gpu::GPUDialect",
    "mlir::math::MathDialect",
    "mlir::memref::MemRefDialect",
    "mlir::scf::SCFDialect",
    "mlir::tensor::TensorDialect",
  ];
}

def MapForallToGPUPass : Pass<"moka-map-forall-to-gpu", "mlir::func::FuncOp"> {
  let summary = "Turn scf.forall loops mapped to GPU blocks into gpu.launch";
  let description = [{
    Each outermost `scf.forall` on buffers whose mapping is `#gpu.block<x>`,
    `<y>` and `<z>` (normalized bounds, sizes possibly dynamic) becomes a
    `gpu.launch` whose grid is the loop's sizes and whose body is the loop's
    body with the induction variables replaced by block ids. Its
    `memref.alloca`s in the workgroup address space become the launch's
    workgroup buffers (one per block). The `#gpu.thread` foralls nested in
    it (static sizes) are then mapped to thread ids by upstream's
    `mapNestedForallToThreadsImpl` (the code of the transform op
    `gpu.map_nested_forall_to_threads`), with a barrier after each; the
    block has as many threads as the largest of them. Thread loops are
    one-dimensional (`#gpu.thread<x>` or `<linear_dim_0>`), not nested in
    one another, and every thread of a block must reach each of them (the
    conditions and bounds of the branches and loops around them must be
    the same in a block): the barriers are block-wide. The block loop's body
    outside thread loops runs in every thread, so it may not write memory.
  }];
  let dependentDialects = [
    "mlir::affine::AffineDialect",
    "mlir::arith::ArithDialect",
    "mlir::gpu::GPUDialect",
    "mlir::memref::MemRefDialect",
    "mlir::scf::SCFDialect",
  ];
}

def MapParallelLoopsToGPUPass : Pass<"moka-map-parallel-loops-to-gpu", "mlir::func::FuncOp"> {
  let summary = "Tile outermost scf.parallel loops into GPU blocks and threads";
  let description = [{
    Each outermost `scf.parallel` of a host function becomes a kernel grid:
    it is tiled by `block-size` along one dimension (the innermost, or the
    outermost when the innermost is statically shorter than a warp) and the
    tiles are mapped with the GPU dialect's mapping attributes: the tiled
    dimension's points to `thread_x` (consecutive threads touch consecutive
    elements: coalesced accesses), the outermost dimension to `block_x`
    (the grid dimension without a 65535 limit), the tiled dimension's tiles
    and one more dimension to `block_y`/`block_z`; further dimensions and
    nested parallel loops run sequentially in each thread.
    `convert-parallel-loops-to-gpu` then turns the loops into `gpu.launch`.
  }];
  let options = [
    Option<"blockSize", "block-size", "int64_t", /*default=*/"256",
           "Threads per block">,
  ];
  let dependentDialects = [
    "mlir::affine::AffineDialect",
    "mlir::arith::ArithDialect",
    "mlir::gpu::GPUDialect",
    "mlir::scf::SCFDialect",
  ];
}

def CopyGlobalsPass : Pass<"moka-copy-globals", "mlir::func::FuncOp"> {
  let summary = "Replace memref.get_global by a copy in an allocated buffer";
  let description = [{
    Kernels cannot dereference host globals (constants, weights). Before
    buffer deallocation, each `memref.get_global` becomes a `memref.alloc`
    and a `memref.copy` of the global, so the copy is freed like any other
    buffer and, on GPUs, lives in managed memory (`moka-use-managed-memory`).
  }];
  let dependentDialects = ["mlir::memref::MemRefDialect"];
}

def UseManagedMemoryPass : Pass<"moka-use-managed-memory", "mlir::func::FuncOp"> {
  let summary = "Host allocations and constants in memory both the host and the GPU reach";
  let description = [{
    With kernels launched from host code that also runs sequential loops
    over the same buffers, moka's GPU pipeline keeps every buffer in CUDA
    managed memory: `memref.alloc`/`memref.dealloc` outside kernels become
    `gpu.alloc host_shared`/`gpu.dealloc`. Globals reach kernels as copies
    (`moka-copy-globals`).
  }];
  let dependentDialects = [
    "mlir::gpu::GPUDialect",
    "mlir::memref::MemRefDialect",
  ];
}

def MergeGPUModulesPass : Pass<"moka-merge-gpu-modules", "mlir::ModuleOp"> {
  let summary = "Put every outlined kernel into one gpu.module";
  let description = [{
    `gpu-kernel-outlining` makes a `gpu.module` per kernel. One module per
    model gives one PTX file (`mokac --emit=ptx`) and one module load at run
    time: this pass moves every kernel into the first `gpu.module` (renaming
    kernels whose names collide) and updates the `gpu.launch_func` ops.
  }];
  let dependentDialects = ["mlir::gpu::GPUDialect"];
}

def ApproximateMathPass : Pass<"moka-approximate-math", "mlir::func::FuncOp"> {
  let summary = "Polynomial approximations of f32 exp (scalar and vector)";
  let description = [{
    Without it, `math.exp` becomes `llvm.intr.exp`, which the x86 backend
    lowers to a libm call per vector lane. The upstream polynomial
    approximation (range reduction, a degree-5 polynomial and exponent
    bit manipulation: about 1 ulp) is branch-free vector code. Applied to
    f32 `math.exp` only.
  }];
  let dependentDialects = [
    "mlir::arith::ArithDialect",
    "mlir::math::MathDialect",
    "mlir::vector::VectorDialect",
  ];
}

#endif // MOKA_TRANSFORMS_PASSES_TD
