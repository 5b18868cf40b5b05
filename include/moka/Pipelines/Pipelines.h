//===- Pipelines.h - moka's named pass pipelines ----------------*- C++ -*-===//
//
// Declares the pass pipelines that take moka IR to the LLVM dialect.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_PIPELINES_PIPELINES_H
#define MOKA_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassOptions.h"
#include "llvm/ADT/STLFunctionalExtras.h"

#include <optional>

namespace mlir {
class OpPassManager;
} // namespace mlir

namespace moka {

struct CPUPipelineOptions
    : public mlir::PassPipelineOptions<CPUPipelineOptions> {
  Option<int64_t> vectorSize{
      *this, "vector-size",
      llvm::cl::desc("Elements of the innermost dimension per vector tile"),
      llvm::cl::init(64)};
  Option<int64_t> rowTile{
      *this, "row-tile",
      llvm::cl::desc("Rows per fused tile of a matrix product and the KAN "
                     "activations around it"),
      llvm::cl::init(128)};
  Option<bool> parallel{
      *this, "parallel",
      llvm::cl::desc("Run parallel loops on OpenMP threads (else serially)"),
      llvm::cl::init(true)};
  Option<bool> reportChecks{
      *this, "report-checks",
      llvm::cl::desc("Failed run-time checks call the runtime's "
                     "mokaCheckFailed, which returns an error to the caller "
                     "of a compiled library (else they print and abort)"),
      llvm::cl::init(false)};
};

struct GPUPipelineOptions
    : public mlir::PassPipelineOptions<GPUPipelineOptions> {
  Option<std::string> chip{
      *this, "chip", llvm::cl::desc("GPU architecture (sm_80, sm_90, ...)"),
      llvm::cl::init("sm_90")};
  Option<std::string> features{*this, "features",
                               llvm::cl::desc("PTX features (PTX ISA version)"),
                               llvm::cl::init("+ptx80")};
  Option<std::string> format{
      *this, "format",
      llvm::cl::desc("Kernel binary format: isa (PTX text), bin (cubin, "
                     "needs ptxas) or fatbin"),
      llvm::cl::init("isa")};
  Option<std::string> toolkit{
      *this, "toolkit",
      llvm::cl::desc("CUDA toolkit directory (libdevice, ptxas)"),
      llvm::cl::init("")};
  Option<int64_t> blockSize{*this, "block-size",
                            llvm::cl::desc("Threads per block"),
                            llvm::cl::init(256)};
  Option<int> optLevel{*this, "opt-level",
                       llvm::cl::desc("Optimization level of the kernels"),
                       llvm::cl::init(3)};
  Option<bool> reportChecks{
      *this, "report-checks",
      llvm::cl::desc("Failed run-time checks call the runtime's "
                     "mokaCheckFailed (else they print and abort)"),
      llvm::cl::init(false)};
};

struct GPUCodegenOptions : public mlir::PassPipelineOptions<GPUCodegenOptions> {
  Option<bool> workgroupMemory{
      *this, "workgroup-memory",
      llvm::cl::desc("Kernel tiles in GPU workgroup memory (false: default "
                     "memory, so that the loops run on a CPU)"),
      llvm::cl::init(true)};
};

/// The problem with `options`, or an empty string: the chip must be one
/// LLVM's NVPTX backend knows, the format isa, bin or fatbin, the block
/// size 1..1024 threads, and a toolkit named by the option or $CUDA_HOME
/// must exist and hold libdevice.
std::string checkGPUPipelineOptions(const GPUPipelineOptions &options);

/// `kv` caches expanded into their storage tensors (with the kv ops lowered):
/// the signatures tools show and the C interface carries. The first passes
/// of every pipeline; tools run them alone first to read signatures. With
/// `cpuKernels`, decode attention becomes explicit vector code for CPUs;
/// with `gpuKernels`, loops mapped to GPU blocks and threads, their tiles
/// in workgroup memory or, without `workgroupMemory`, in default memory
/// (the form that runs on a CPU).
void buildCacheExpansion(mlir::OpPassManager &pm, bool cpuKernels = false,
                         bool gpuKernels = false, bool workgroupMemory = true);

/// The first stage of every pipeline: moka's composite ops expanded,
/// run-time shape checks added, moka's dialects lowered to linalg on
/// tensors (with activations fused into row tiles of `fusionRowTile` rows
/// around matrix products when given). With `cpuKernels`, decode attention
/// and small batches of MoE experts become explicit vector code for CPUs
/// (convert-kv-to-linalg and convert-moe-to-linalg's `cpu-kernels`); with
/// `gpuKernels`, decode attention and MoE experts become loops mapped to
/// GPU blocks and threads (their `gpu-kernels`, with `workgroupMemory` as
/// in buildCacheExpansion).
void buildLoweringToLinalg(mlir::OpPassManager &pm,
                           std::optional<int64_t> fusionRowTile,
                           bool cpuKernels = false, bool gpuKernels = false,
                           bool workgroupMemory = true);

/// One-shot bufferization of whole modules (identity layouts at function
/// boundaries) and ownership-based deallocation; `beforeDeallocation` adds
/// passes between the two.
void buildBufferization(
    mlir::OpPassManager &pm,
    llvm::function_ref<void(mlir::OpPassManager &)> beforeDeallocation);

/// moka IR on tensors -> linalg -> buffers -> parallel loops mapped to GPU
/// blocks and threads -> NVVM kernels in gpu.binary ops, host code in the
/// LLVM dialect calling the mgpu* runtime (`moka-gpu-pipeline`).
void buildGPUPipeline(mlir::OpPassManager &pm,
                      const GPUPipelineOptions &options);

/// moka IR on tensors -> tiled, vectorized linalg -> bufferized loops ->
/// LLVM dialect (`moka-cpu-pipeline`).
void buildCPUPipeline(mlir::OpPassManager &pm,
                      const CPUPipelineOptions &options);

/// The first half of the CPU pipeline: moka ops lowered, tiled and
/// vectorized on tensors, not yet bufferized (`moka-cpu-codegen`).
void buildCPUCodegenPipeline(mlir::OpPassManager &pm,
                             const CPUPipelineOptions &options);

/// The first stage of the GPU pipeline, on tensors: moka ops lowered with
/// the GPU kernels (MoE experts, decode attention) and contractions as
/// tiled kernels, all as loops mapped to GPU blocks and threads, not yet
/// bufferized (`moka-gpu-codegen`). Without workgroup memory the loops run
/// on a CPU (the tests' form).
void buildGPUCodegenPipeline(mlir::OpPassManager &pm, bool workgroupMemory);

/// Registers the pipelines above under their names.
void registerMokaPipelines();

} // namespace moka

#endif // MOKA_PIPELINES_PIPELINES_H
