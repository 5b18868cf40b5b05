//===- Pipelines.h - moka's named pass pipelines ----------------*- C++ -*-===//
//
// Declares the pass pipelines that take moka IR to the LLVM dialect.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_PIPELINES_PIPELINES_H
#define MOKA_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassOptions.h"

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

/// moka IR on tensors -> tiled, vectorized linalg -> bufferized loops ->
/// LLVM dialect (`moka-cpu-pipeline`).
void buildCPUPipeline(mlir::OpPassManager &pm,
                      const CPUPipelineOptions &options);

/// The first half of the CPU pipeline: moka ops lowered, tiled and
/// vectorized on tensors, not yet bufferized (`moka-cpu-codegen`).
void buildCPUCodegenPipeline(mlir::OpPassManager &pm,
                             const CPUPipelineOptions &options);

/// Registers the pipelines above under their names.
void registerMokaPipelines();

} // namespace moka

#endif // MOKA_PIPELINES_PIPELINES_H
