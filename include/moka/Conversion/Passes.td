//===- Passes.td - moka conversion passes ------------------*- tablegen -*-===//
//
// Conversions from moka's dialects to upstream MLIR dialects.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_CONVERSION_PASSES_TD
#define MOKA_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertKANToLinalgPass : Pass<"convert-kan-to-linalg"> {
  let summary = "Lower `kan` operations to `linalg` on tensors";
  let description = [{
    Rewrites every `kan` operation as `linalg.generic` operations on tensors.

    `kan.rational` reshapes its channels-last input `[..., C]` to
    `[..., G, C/G]` (a view, no copy), prepares the coefficients
    once (`f32`, absolute value of the denominator) and applies the rational
    in one all-parallel `linalg.generic` whose coefficient operands are
    indexed by the group dimension only. When `C` is dynamic, a `cf.assert`
    checks `C % G == 0` at run time.

    `kan.rational_grad` views its input as `[R, G, J, L]` (leading
    dimensions folded into rows `R`, `L` lanes: the largest power of two up
    to 16 dividing `C/G`) and runs one `scf.forall` over blocks of 8 rows.
    Each block computes `dx` together with `t = dy/Q` and `u = -dy P/Q^2`
    (one element-wise generic, one division per element), then accumulates
    `t x^i` and `u |x|^j` into per-block partials that keep the lanes apart.
    Fixed-order reductions over blocks and lanes, accumulated in f64
    and rounded to f32 once, follow. The partition
    depends only on the shape, so the result is bit-identical for any thread
    count; there are no atomics. With more than one dynamic leading
    dimension, `dx` is a separate element-wise pass. Dynamic sizes of `x` and
    `dy` are checked to agree at run time.
  }];
  let dependentDialects = [
    "mlir::affine::AffineDialect",
    "mlir::arith::ArithDialect",
    "mlir::cf::ControlFlowDialect",
    "mlir::scf::SCFDialect",
    "mlir::linalg::LinalgDialect",
    "mlir::math::MathDialect",
    "mlir::tensor::TensorDialect",
  ];
}

def ConvertMoEToLinalgPass : Pass<"convert-moe-to-linalg"> {
  let summary = "Lower `moe` operations to linalg, scf and tensor ops";
  let description = [{
    `moe.route`: the scores (softmax or sigmoid over each token's logits)
    and the selection keys (scores plus bias) are all-parallel and reduction
    `linalg.generic`s; the selection itself is an `scf.forall` over tokens
    whose body walks each token's experts with `scf.for` loops: group keys
    and the best `topk_group` groups when routing is group-limited, then `k`
    passes that each take the best remaining candidate in the order (key
    descending, index ascending), so ties go to the lower index. The weights
    are the chosen scores, normalized and scaled as asked.

    `moe.dispatch`: a counting sort of the (token, slot) assignments by
    expert in two sequential passes and a prefix sum (capacity dropping in
    token order in the first pass); expert indices are checked at run time.

    `moe.experts`: one `scf.forall` over experts; each gathers its
    segment's token rows as it reads them (a generic with `tensor.extract`)
    and runs its MLP on the segment (a GR-KAN expert's activations as
    `kan.rational` ops, lowered afterwards by `convert-kan-to-linalg`).
    With at most 8 rows per expert on
    average (checked at run time) and 16 dividing d and f, the weight stacks
    are read in place as 16-lane partial dot products; otherwise they are
    transposed once and the products are outer-product contractions.

    With `cpu-kernels`, SwiGLU and GELU experts with up to 128 rows per
    expert on average (and static d and f that 16 divides) are instead
    explicit vector code in two `scf.forall`s over column tiles of the
    expert weights (so that the threads share every selected expert's
    weights whichever experts are selected): the first computes, for two
    segment rows at a time, the gate and up projections of 4 channels
    (SwiGLU: 4 rows each of w1 and w3) or the projections of 8 channels
    (GELU), 16-lane dot products over weight rows read in place, and writes
    the activated hidden row tile; the second does the same for the down
    projection. Each selected expert's
    weights are read once, from memory, and reused from the caches by every
    row of its segment.

    `moe.shared_experts`: the MLP on every token as contractions on
    transposed weights, times `sigmoid(x gate^T)` when gated; with
    `cpu-kernels` and up to 128 tokens, the kernel above as one expert
    whose segment is every token.

    With `gpu-kernels`, SwiGLU and GELU experts (any d and f) are instead
    grouped products as loops over GPU blocks (64-row tiles of a segment,
    64-column tiles, experts; blocks past their segment's end do nothing)
    and 256-thread loops (GPUKernelBuilder): per step along the
    contraction, the segment's rows (gathered through `rows`) and the
    weights' tiles are copied to workgroup memory with coalesced reads, then
    each thread adds a 4 x 4 tile of products; the first kernel computes the
    gate and up products together and writes `silu(g) * u` (or `gelu(g)`),
    the second the down product. Shared experts use them as one expert over
    every token. With `workgroup-memory=false` the tiles are in default
    memory and the loops run on a CPU (the form tests check).

    Rows and offsets that do not come from `moe.dispatch`, and slots of
    `moe.combine` that do not index the output of that dispatch's experts,
    are checked at run time.

    `moe.combine`: one generic over (token, channel) reducing over the
    slots, reading each slot's expert output row with `tensor.extract`.
  }];
  let options = [
    Option<"cpuKernels", "cpu-kernels", "bool", /*default=*/"false",
           "Explicit vector kernels for CPUs (else linalg only)">,
    Option<"gpuKernels", "gpu-kernels", "bool", /*default=*/"false",
           "Grouped matrix products mapped to GPU blocks and threads, with "
           "tiles staged in workgroup memory">,
    Option<"workgroupMemory", "workgroup-memory", "bool", /*default=*/"true",
           "With gpu-kernels: tiles in GPU workgroup memory (false: default "
           "memory, so that the same loops run on a CPU)">,
  ];
  let dependentDialects = [
    "moka::kan::KANDialect",
    "mlir::arith::ArithDialect",
    "mlir::bufferization::BufferizationDialect",
    "mlir::cf::ControlFlowDialect",
    "mlir::gpu::GPUDialect",
    "mlir::memref::MemRefDialect",
    "mlir::linalg::LinalgDialect",
    "mlir::math::MathDialect",
    "mlir::scf::SCFDialect",
    "mlir::tensor::TensorDialect",
    "mlir::vector::VectorDialect",
  ];
}

def ConvertKVToLinalgPass : Pass<"convert-kv-to-linalg", "mlir::ModuleOp"> {
  let summary = "Lower `kv` caches and operations to linalg on storage tensors";
  let description = [{
    A `!kv.cache` becomes its storage tensors (docs/kv.md) by a 1:N type
    conversion, in function signatures, calls and returns too, so a host
    program passes and keeps them between calls.

    `kv.empty`: zero-filled storage. `kv.append`: the tokens written after
    the `n` held (a run-time check that they fit the capacity); for a
    quantized cache, the window and the new tokens are laid end to end, the
    leading multiple of `G_t` that leaves the window is quantized (min/max
    reductions per key group and channel, per token and value group; codes
    rounded to nearest even and packed several to a byte) and written after
    the compressed tokens, and the rest becomes the new window.

    `kv.decode_attention`: scores of the query heads sharing a key/value
    head (one contraction, keys dequantized in its body from the packed
    codes and their group statistics), one softmax over the compressed and
    window tokens, and the weighted sums of values (dequantized the same
    way), divided by the softmax sum (zero without tokens). A latent cache
    with up-projections reconstructs keys and values first (see
    `kv-absorb-latent-projections` for the form that does not).

    With `cpu-kernels`, attention on float and quantized caches is instead
    explicit vector code in an `scf.forall` over (sequence, key/value head,
    chunk of 512 tokens): codes unpacked into bit planes in registers, the
    query scaled by each key group's scales once per group, values
    dequantized once per token; each chunk returns its softmax maximum, sum
    and unnormalized output, and an exact merge combines the chunks
    (flash-decoding's split).

    With `gpu-kernels`, attention on float and quantized caches (up to 32
    query heads per key/value head, tiles within 48 KB) is instead loops
    over GPU blocks (chunk of 256 tokens, key/value head, sequence) and
    256-thread loops: the scaled query heads staged in workgroup memory;
    per step of 32 tokens the keys copied into workgroup memory,
    dequantized, with coalesced reads, then one score per thread; one
    thread per query head for the chunk's softmax statistics; one thread per
    channel accumulating every query head's weighted values; then the same
    exact merge. With `workgroup-memory=false` the tiles are in default
    memory and the loops run on a CPU (the form tests check).
  }];
  let options = [
    Option<"cpuKernels", "cpu-kernels", "bool", /*default=*/"false",
           "Explicit vector kernels for CPUs (else linalg only)">,
    Option<"gpuKernels", "gpu-kernels", "bool", /*default=*/"false",
           "Decode attention as loops mapped to GPU blocks and threads, with "
           "tiles staged in workgroup memory">,
    Option<"workgroupMemory", "workgroup-memory", "bool", /*default=*/"true",
           "With gpu-kernels: tiles in GPU workgroup memory (false: default "
           "memory, so that the same loops run on a CPU)">,
  ];
  let dependentDialects = [
    "mlir::arith::ArithDialect",
    "mlir::bufferization::BufferizationDialect",
    "mlir::cf::ControlFlowDialect",
    "mlir::gpu::GPUDialect",
    "mlir::linalg::LinalgDialect",
    "mlir::math::MathDialect",
    "mlir::memref::MemRefDialect",
    "mlir::scf::SCFDialect",
    "mlir::tensor::TensorDialect",
    "mlir::vector::VectorDialect",
  ];
}

#endif // MOKA_CONVERSION_PASSES_TD
