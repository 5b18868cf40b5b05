//===- moka-fuzz-ir.cpp - libFuzzer harness: bytes to machine IR ----------===//
//
// Parses arbitrary bytes as a moka module; what parses and verifies goes
// through the cache expansion and the whole CPU pipeline, and what lowers is
// translated to LLVM IR. Diagnostics are expected and discarded: only a
// crash, a sanitizer report, a hang or unbounded memory is a finding.
//
//===----------------------------------------------------------------------===//

#include "moka/InitAll.h"
#include "moka/Pipelines/Pipelines.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"

#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <string>

using namespace mlir;

namespace {

const DialectRegistry &registry() {
  static DialectRegistry *r = [] {
    auto *registry = new DialectRegistry();
    moka::registerMokaDialects(*registry);
    moka::registerMokaTranslations(*registry);
    return registry;
  }();
  return *r;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // A fresh context per input: nothing interned by one input can mask a
  // bug in the next.
  MLIRContext context(registry(), MLIRContext::Threading::DISABLED);
  context.printOpOnDiagnostic(false);
  ScopedDiagnosticHandler discard(&context,
                                  [](Diagnostic &) { return success(); });
  // MLIR's lexer reads up to a terminating NUL, which files read from disk
  // (MemoryBuffer) always have and libFuzzer's exact-size buffers do not.
  std::string owned(reinterpret_cast<const char *>(data), size);
  llvm::StringRef text(owned);

  // As moka's tools do (moka::readModelFile): the parse stops at its first
  // error, since some upstream parsers crash when they carry on. Jumping
  // out of the parser leaks its state: the harness runs without leak
  // detection.
  OwningOpRef<ModuleOp> module;
  {
    std::jmp_buf parseError;
    ScopedDiagnosticHandler stop(&context, [&](Diagnostic &diag) {
      if (diag.getSeverity() == DiagnosticSeverity::Error)
        std::longjmp(parseError, 1);
      return success();
    });
    if (setjmp(parseError) == 0)
      module = parseSourceString<ModuleOp>(
          text, ParserConfig(&context, /*verifyAfterParse=*/false));
  }
  if (!module || failed(verify(*module)))
    return 0;

  PassManager pm(&context);
  moka::buildCacheExpansion(pm, /*cpuKernels=*/true);
  moka::CPUPipelineOptions options;
  options.reportChecks = true;
  moka::buildCPUPipeline(pm, options);
  if (failed(pm.run(*module)))
    return 0;

  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(*module, llvmContext);
  (void)llvmModule;
  return 0;
}
