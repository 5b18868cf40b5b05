//===- GPUPipeline.cpp - moka IR to NVVM kernels and host code ------------===//
//
// The NVIDIA GPU pipeline: moka's dialects lowered to linalg, bufferized,
// turned into parallel loops, mapped to blocks and threads, outlined into
// kernels and lowered through NVVM to PTX (or a cubin through ptxas); the
// host side launches the kernels through the mgpu* runtime functions and
// keeps buffers in CUDA managed memory.
//
//===----------------------------------------------------------------------===//

#include "moka/Pipelines/Pipelines.h"
#include "moka/Transforms/Passes.h"

#include "mlir/Conversion/AffineToStandard/AffineToStandard.h"
#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVMPass.h"
#include "mlir/Conversion/GPUCommon/GPUCommonPass.h"
#include "mlir/Conversion/GPUToNVVM/GPUToNVVMPass.h"
#include "mlir/Conversion/IndexToLLVM/IndexToLLVM.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/NVVMToLLVM/NVVMToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Conversion/SCFToGPU/SCFToGPUPass.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/Transforms/OptimizeForNVVM.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/FileSystem.h"

#include <cstdlib>

using namespace mlir;

/// The CUDA toolkit (libdevice for math functions, ptxas for cubins): the
/// option, else $CUDA_HOME, else /usr/local/cuda when present.
static std::string toolkitPath(StringRef option) {
  if (!option.empty())
    return option.str();
  if (const char *home = std::getenv("CUDA_HOME"))
    return home;
  if (llvm::sys::fs::is_directory("/usr/local/cuda"))
    return "/usr/local/cuda";
  return "";
}

void moka::buildGPUPipeline(OpPassManager &pm,
                            const GPUPipelineOptions &options) {
  buildLoweringToLinalg(pm, /*fusionRowTile=*/std::nullopt);
  // Kernels cannot read host globals: constants become buffers (freed by
  // the deallocation pipeline like any other).
  buildBufferization(pm, [](OpPassManager &nested) {
    nested.addNestedPass<func::FuncOp>(createCopyGlobalsPass());
  });

  // Parallel loops, mapped to blocks of threads, become gpu.launch.
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToParallelLoopsPass());
  pm.addPass(createForallToParallelLoopPass());
  pm.addPass(createCanonicalizerPass());
  MapParallelLoopsToGPUPassOptions mapping;
  mapping.blockSize = options.blockSize;
  pm.addNestedPass<func::FuncOp>(createMapParallelLoopsToGPUPass(mapping));
  pm.addPass(createConvertParallelLoopToGpuPass());
  pm.addNestedPass<func::FuncOp>(createUseManagedMemoryPass());
  if (options.reportChecks)
    pm.addPass(createLowerRuntimeChecksPass());
  pm.addPass(createLowerDynamicExpandShapePass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());

  // Outlining, NVVM, binaries and host lowering: the stages of upstream's
  // gpu-lower-to-nvvm-pipeline, with the toolkit path (libdevice, ptxas)
  // and the binary format moka's tools choose.
  pm.addPass(createGpuKernelOutliningPass());
  pm.addPass(createMergeGPUModulesPass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertNVVMToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  GpuNVVMAttachTargetOptions target;
  target.chip = options.chip;
  target.features = options.features;
  target.optLevel = options.optLevel;
  pm.addPass(createGpuNVVMAttachTarget(target));
  pm.addPass(createLowerAffinePass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());

  pm.addNestedPass<gpu::GPUModuleOp>(createStripDebugInfoPass());
  pm.addNestedPass<gpu::GPUModuleOp>(createConvertGpuOpsToNVVMOps());
  pm.addNestedPass<gpu::GPUModuleOp>(LLVM::createNVVMOptimizeForTargetPass());
  pm.addNestedPass<gpu::GPUModuleOp>(createCanonicalizerPass());
  pm.addNestedPass<gpu::GPUModuleOp>(createCSEPass());
  pm.addNestedPass<gpu::GPUModuleOp>(createReconcileUnrealizedCastsPass());

  pm.addPass(createGpuToLLVMConversionPass());
  GpuModuleToBinaryPassOptions binary;
  binary.compilationTarget = options.format;
  binary.toolkitPath = toolkitPath(options.toolkit);
  pm.addPass(createGpuModuleToBinaryPass(binary));
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}
