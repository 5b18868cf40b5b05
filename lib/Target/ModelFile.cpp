//===- ModelFile.cpp - Reading a model for the tools ----------------------===//

#include "moka/Target/ModelFile.h"
#include "moka/InitAll.h"
#include "moka/Pipelines/Pipelines.h"

#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"

using namespace mlir;

void moka::configureToolContext(MLIRContext &context) {
  DialectRegistry registry;
  registerMokaDialects(registry);
  registerMokaTranslations(registry);
  context.appendDialectRegistry(registry);
  context.loadAllAvailableDialects();
  context.printOpOnDiagnostic(false);
}

OwningOpRef<ModuleOp> moka::readModelFile(MLIRContext &context,
                                          llvm::SourceMgr &sourceMgr,
                                          StringRef path, bool cpuKernels,
                                          std::string &error) {
  auto file = openInputFile(path, &error);
  if (!file)
    return nullptr;
  sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!module) {
    error = "'" + path.str() + "' could not be parsed or failed to verify";
    return nullptr;
  }
  PassManager expand(&context);
  buildCacheExpansion(expand, cpuKernels);
  if (failed(expand.run(*module))) {
    error = "the kv caches of '" + path.str() + "' could not be lowered";
    return nullptr;
  }
  return module;
}
