//===- MergeGPUModules.cpp - One gpu.module per model ---------------------===//
//
// Moves the kernels of every gpu.module into the first one and points the
// launches at them.
//
//===----------------------------------------------------------------------===//

#include "moka/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/SymbolTable.h"

namespace moka {
#define GEN_PASS_DEF_MERGEGPUMODULESPASS
#include "moka/Transforms/Passes.h.inc"
} // namespace moka

using namespace mlir;

namespace {

struct MergeGPUModulesPass
    : public moka::impl::MergeGPUModulesPassBase<MergeGPUModulesPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<gpu::GPUModuleOp> gpuModules(module.getOps<gpu::GPUModuleOp>());
    if (gpuModules.size() < 2)
      return;
    gpu::GPUModuleOp target = gpuModules.front();
    SymbolTable targetSymbols(target);
    // (old module, old symbol) -> new reference.
    DenseMap<std::pair<StringAttr, StringAttr>, SymbolRefAttr> moved;
    for (gpu::GPUModuleOp source : llvm::drop_begin(gpuModules)) {
      for (Operation &op :
           llvm::make_early_inc_range(source.getBody()->getOperations())) {
        auto symbol = dyn_cast<SymbolOpInterface>(&op);
        if (!symbol) {
          signalPassFailure();
          return;
        }
        StringAttr oldName = symbol.getNameAttr();
        // Identical declarations (e.g. of libdevice functions) are shared.
        if (!isa<gpu::GPUFuncOp>(op) && targetSymbols.lookup(oldName)) {
          op.erase();
          continue;
        }
        op.remove();
        StringAttr newName = targetSymbols.insert(&op);
        moved[{source.getNameAttr(), oldName}] = SymbolRefAttr::get(
            target.getNameAttr(), {FlatSymbolRefAttr::get(newName)});
      }
    }
    module.walk([&](gpu::LaunchFuncOp launch) {
      SymbolRefAttr kernel = launch.getKernel();
      auto it =
          moved.find({kernel.getRootReference(), kernel.getLeafReference()});
      if (it != moved.end())
        launch.setKernelAttr(it->second);
    });
    for (gpu::GPUModuleOp source : llvm::drop_begin(gpuModules))
      source.erase();
  }
};

} // namespace
