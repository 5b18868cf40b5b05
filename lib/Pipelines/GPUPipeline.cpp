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
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/TargetParser/Triple.h"

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

extern "C" void LLVMInitializeNVPTXTargetInfo();
extern "C" void LLVMInitializeNVPTXTargetMC();

std::string moka::checkGPUPipelineOptions(const GPUPipelineOptions &options) {
  static bool initialized = [] {
    LLVMInitializeNVPTXTargetInfo();
    LLVMInitializeNVPTXTargetMC();
    return true;
  }();
  (void)initialized;
  llvm::Triple triple("nvptx64-nvidia-cuda");
  std::string error;
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return "the NVPTX target is not available: " + error;
  std::unique_ptr<llvm::MCSubtargetInfo> subtarget(
      target->createMCSubtargetInfo(triple, "", ""));
  StringRef chip = options.chip;
  if (!chip.starts_with("sm_") || !subtarget ||
      !subtarget->isCPUStringValid(chip))
    return "chip '" + options.chip +
           "' is not an NVIDIA GPU architecture LLVM knows (sm_80, sm_90, "
           "...)";
  StringRef format = options.format;
  if (format != "isa" && format != "bin" && format != "fatbin")
    return "format '" + options.format + "' is not isa, bin or fatbin";
  if (options.blockSize < 1 || options.blockSize > 1024)
    return "block-size " + std::to_string(options.blockSize) +
           " is not between 1 and 1024 threads";
  if (options.optLevel < 0 || options.optLevel > 3)
    return "opt-level " + std::to_string(options.optLevel) +
           " is not between 0 and 3";
  // A toolkit the user named must be there: without libdevice, kernels
  // calling math functions would be left with undefined __nv_* calls.
  std::string named = options.toolkit;
  if (named.empty())
    if (const char *home = std::getenv("CUDA_HOME"))
      named = home;
  if (!named.empty()) {
    SmallString<128> libdevice(named);
    llvm::sys::path::append(libdevice, "nvvm", "libdevice", "libdevice.10.bc");
    if (!llvm::sys::fs::exists(libdevice))
      return "CUDA toolkit '" + named + "' has no " + std::string(libdevice) +
             " (set toolkit= or CUDA_HOME)";
  }
  return "";
}

void moka::buildGPUCodegenPipeline(OpPassManager &pm, bool workgroupMemory) {
  buildLoweringToLinalg(pm, /*fusionRowTile=*/std::nullopt,
                        /*cpuKernels=*/false, /*gpuKernels=*/true,
                        workgroupMemory);
  TileGPUContractionsPassOptions contractions;
  contractions.workgroupMemory = workgroupMemory;
  pm.addNestedPass<func::FuncOp>(createTileGPUContractionsPass(contractions));
  pm.addPass(createCanonicalizerPass());
}

void moka::buildGPUPipeline(OpPassManager &pm,
                            const GPUPipelineOptions &options) {
  buildGPUCodegenPipeline(pm, /*workgroupMemory=*/true);
  // Kernels cannot read host globals: constants become buffers (freed by
  // the deallocation pipeline like any other).
  buildBufferization(pm, [](OpPassManager &nested) {
    nested.addNestedPass<func::FuncOp>(createCopyGlobalsPass());
  });
  // Loops already mapped to blocks and threads (moka-gpu-codegen's kernels:
  // contractions, MoE experts, decode attention) become kernels first.
  pm.addNestedPass<func::FuncOp>(createMapForallToGPUPass());

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
