//===- Sanitizer.cpp - AddressSanitizer for generated code ----------------===//

#include "moka/Target/Sanitizer.h"

#include "llvm/IR/Module.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Transforms/Instrumentation/AddressSanitizer.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MOKA_HOST_ASAN 1
#endif
#endif
#if !defined(MOKA_HOST_ASAN) && defined(__SANITIZE_ADDRESS__)
#define MOKA_HOST_ASAN 1
#endif

bool moka::hostHasAddressSanitizer() {
#ifdef MOKA_HOST_ASAN
  return true;
#else
  return false;
#endif
}

void moka::instrumentWithAddressSanitizer(llvm::Module &module,
                                          llvm::TargetMachine *targetMachine) {
  for (llvm::Function &function : module)
    if (!function.isDeclaration())
      function.addFnAttr(llvm::Attribute::SanitizeAddress);

  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder builder(targetMachine);
  builder.registerModuleAnalyses(mam);
  builder.registerCGSCCAnalyses(cgam);
  builder.registerFunctionAnalyses(fam);
  builder.registerLoopAnalyses(lam);
  builder.crossRegisterProxies(lam, fam, cgam, mam);

  llvm::ModulePassManager passes;
  passes.addPass(llvm::AddressSanitizerPass(llvm::AddressSanitizerOptions{},
                                            /*UseGlobalGC=*/false,
                                            /*UseOdrIndicator=*/false));
  passes.run(module, mam);
}
