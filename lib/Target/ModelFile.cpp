//===- ModelFile.cpp - Reading a model for the tools ----------------------===//

#include "moka/Target/ModelFile.h"
#include "moka/InitAll.h"
#include "moka/Pipelines/Pipelines.h"

#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/ErrorHandling.h"

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
                                          StringRef path, bool gpu,
                                          std::string &error,
                                          ParseErrorFn onParseError) {
  auto file = openInputFile(path, &error);
  if (!file)
    return nullptr;
  sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  OwningOpRef<ModuleOp> module;
  {
    // A parse error ends the parse, and some of upstream's custom parsers
    // (linalg.transpose's `permutation`, for one) carry on past their first
    // error into a null attribute and crash: stop at the first error.
    ScopedDiagnosticHandler stop(&context, [&](Diagnostic &diag) {
      if (diag.getSeverity() != DiagnosticSeverity::Error)
        return failure(); // Notes and warnings go to the caller's handler.
      onParseError(diag);
      llvm::report_fatal_error("onParseError returned");
    });
    module = parseSourceFile<ModuleOp>(
        sourceMgr, ParserConfig(&context, /*verifyAfterParse=*/false));
  }
  if (!module) {
    error = "'" + path.str() + "' could not be parsed";
    return nullptr;
  }
  if (failed(verify(*module))) {
    error = "'" + path.str() + "' failed to verify";
    return nullptr;
  }
  PassManager expand(&context);
  buildCacheExpansion(expand, /*cpuKernels=*/!gpu, /*gpuKernels=*/gpu);
  if (failed(expand.run(*module))) {
    error = "the kv caches of '" + path.str() + "' could not be lowered";
    return nullptr;
  }
  return module;
}
