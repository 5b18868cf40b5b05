//===- CPUPipeline.cpp - moka IR to the LLVM dialect for CPUs -------------===//
//
// The CPU compilation pipeline: lowering of moka's dialects, thread and
// vector tiling, one-shot bufferization, OpenMP and LLVM lowering.
//
//===----------------------------------------------------------------------===//

#include "moka/Conversion/Passes.h"
#include "moka/Dialect/KAN/Transforms/Passes.h"
#include "moka/Dialect/KV/Transforms/Passes.h"
#include "moka/Dialect/MoE/Transforms/Passes.h"
#include "moka/Pipelines/Pipelines.h"
#include "moka/Transforms/Passes.h"

#include "mlir/Conversion/AffineToStandard/AffineToStandard.h"
#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/BufferizationToMemRef/BufferizationToMemRef.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVMPass.h"
#include "mlir/Conversion/IndexToLLVM/IndexToLLVM.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/OpenMPToLLVM/ConvertOpenMPToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Conversion/SCFToOpenMP/SCFToOpenMP.h"
#include "mlir/Conversion/UBToLLVM/UBToLLVM.h"
#include "mlir/Conversion/VectorToLLVM/ConvertVectorToLLVMPass.h"
#include "mlir/Conversion/VectorToSCF/VectorToSCF.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/Dialect/Vector/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void moka::buildCacheExpansion(OpPassManager &pm, bool cpuKernels,
                               bool gpuKernels, bool workgroupMemory) {
  pm.addPass(kv::createKVAbsorbLatentProjectionsPass());
  ConvertKVToLinalgPassOptions kvOptions;
  kvOptions.cpuKernels = cpuKernels;
  kvOptions.gpuKernels = gpuKernels;
  kvOptions.workgroupMemory = workgroupMemory;
  pm.addPass(createConvertKVToLinalgPass(kvOptions));
}

void moka::buildLoweringToLinalg(OpPassManager &pm,
                                 std::optional<int64_t> fusionRowTile,
                                 bool cpuKernels, bool gpuKernels,
                                 bool workgroupMemory) {
  buildCacheExpansion(pm, cpuKernels, gpuKernels, workgroupMemory);
  pm.addPass(kan::createKANExpandLayersPass());
  pm.addPass(moe::createMoEDecomposeLayersPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // Before any tiling: tiles take their sizes from one operand per loop.
  pm.addNestedPass<func::FuncOp>(createInsertShapeChecksPass());
  pm.addPass(createCanonicalizerPass());
  if (fusionRowTile) {
    kan::KANFuseIntoContractionsPassOptions fusion;
    fusion.rowTile = *fusionRowTile;
    pm.addNestedPass<func::FuncOp>(
        kan::createKANFuseIntoContractionsPass(fusion));
  }
  // MoE first: a GR-KAN expert lowers to kan.rational ops.
  ConvertMoEToLinalgPassOptions moeOptions;
  moeOptions.cpuKernels = cpuKernels;
  moeOptions.gpuKernels = gpuKernels;
  moeOptions.workgroupMemory = workgroupMemory;
  pm.addPass(createConvertMoEToLinalgPass(moeOptions));
  pm.addPass(createConvertKANToLinalgPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

void moka::buildBufferization(
    OpPassManager &pm,
    llvm::function_ref<void(OpPassManager &)> beforeDeallocation) {
  // Function boundaries get identity layouts so that callers pass plain
  // contiguous arrays.
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  pm.addPass(createCanonicalizerPass());
  if (beforeDeallocation)
    beforeDeallocation(pm);
  bufferization::BufferDeallocationPipelineOptions dealloc;
  bufferization::buildBufferDeallocationPipeline(pm, dealloc);
  pm.addPass(createConvertBufferizationToMemRefPass());
}

void moka::buildCPUCodegenPipeline(OpPassManager &pm,
                                   const CPUPipelineOptions &options) {
  buildLoweringToLinalg(pm, options.rowTile.getValue(), /*cpuKernels=*/true);
  TileAndVectorizePassOptions tiling;
  tiling.vectorSize = options.vectorSize;
  pm.addNestedPass<func::FuncOp>(createTileAndVectorizePass(tiling));
  // Masks become operands of the transfer ops while still on tensors: a
  // vector.mask region does not survive bufferization.
  pm.addNestedPass<func::FuncOp>(vector::createLowerVectorMaskPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // Accumulator tiles read and written around a reduction loop become loop
  // carried vectors (registers).
  pm.addPass(createLoopInvariantSubsetHoistingPass());
  pm.addPass(createCanonicalizerPass());
}

void moka::buildCPUPipeline(OpPassManager &pm,
                            const CPUPipelineOptions &options) {
  buildCPUCodegenPipeline(pm, options);
  pm.addNestedPass<func::FuncOp>(createApproximateMathPass());
  if (options.reportChecks)
    pm.addPass(createLowerRuntimeChecksPass());

  buildBufferization(pm, nullptr);

  // Vectors and leftover linalg to loops, then loops to OpenMP threads. The
  // OpenMP lowering wraps each parallel body in memref.alloca_scope, which the
  // canonicalizer inlines when the body has no stack allocation.
  // Reductions produced by the vectorizer become element-wise ops and
  // horizontal reductions of 1-D vectors before the generic vector lowering.
  pm.addNestedPass<func::FuncOp>(vector::createLowerVectorMultiReductionPass());
  // Fully unrolled: n-D transfers become 1-D ones without stack temporaries
  // (an alloca would keep the OpenMP body's alloca_scope from being inlined).
  pm.addPass(createConvertVectorToSCFPass(
      VectorTransferToSCFOptions().enableFullUnroll()));
  pm.addPass(createConvertLinalgToLoopsPass());
  if (options.parallel) {
    pm.addPass(createForallToParallelLoopPass());
    pm.addPass(createConvertSCFToOpenMPPass());
    pm.addPass(createBalanceThreadsPass());
  } else {
    pm.addPass(createForallToForLoopPass());
  }
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createLoopInvariantCodeMotionPass());
  pm.addPass(createLowerDynamicExpandShapePass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // bf16 conversions become integer arithmetic: the host may lack native
  // bf16 instructions and the JIT has no runtime helpers for them.
  arith::ArithExpandOpsPassOptions expand;
  expand.includeBf16 = true;
  pm.addPass(arith::createArithExpandOpsPass(expand));
  // 16 x 16 transposes (weight packing) as AVX-512 shuffle sequences.
  ConvertVectorToLLVMPassOptions vectorToLLVM;
  vectorToLLVM.vectorTransposeLowering =
      vector::VectorTransposeLowering::Shuffle16x16;
  pm.addPass(createConvertVectorToLLVMPass(vectorToLLVM));
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertOpenMPToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createUBToLLVMConversionPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
}

void moka::registerMokaPipelines() {
  PassPipelineRegistration<CPUPipelineOptions>(
      "moka-cpu-pipeline",
      "Compile moka IR on tensors to the LLVM dialect for multicore CPUs "
      "(lowering, thread and vector tiling, bufferization, OpenMP, LLVM)",
      buildCPUPipeline);
  PassPipelineRegistration<GPUCodegenOptions>(
      "moka-gpu-codegen",
      "Lower moka IR to loops mapped to GPU blocks and threads, on tensors "
      "(the first stage of moka-gpu-pipeline); workgroup-memory=false gives "
      "the form that runs on a CPU",
      [](OpPassManager &pm, const GPUCodegenOptions &options) {
        buildGPUCodegenPipeline(pm, options.workgroupMemory);
      });
  PassPipelineRegistration<CPUPipelineOptions>(
      "moka-cpu-codegen",
      "Lower moka IR to linalg and tile and vectorize it for CPUs, on tensors "
      "(the first half of moka-cpu-pipeline)",
      buildCPUCodegenPipeline);
  // Registered by hand so that bad options are errors, not a pipeline
  // that fails late or emits a broken binary.
  registerPassPipeline(
      "moka-gpu-pipeline",
      "Compile moka IR on tensors for NVIDIA GPUs: kernels as PTX or cubin "
      "in gpu.binary ops, host code in the LLVM dialect",
      [](OpPassManager &pm, StringRef text,
         function_ref<LogicalResult(const Twine &)> errorHandler) {
        GPUPipelineOptions options;
        if (failed(options.parseFromString(text)))
          return failure();
        std::string problem = checkGPUPipelineOptions(options);
        if (!problem.empty())
          return errorHandler("moka-gpu-pipeline: " + problem);
        buildGPUPipeline(pm, options);
        return success();
      },
      [](function_ref<void(const detail::PassOptions &)> optHandler) {
        optHandler(GPUPipelineOptions());
      });
}
