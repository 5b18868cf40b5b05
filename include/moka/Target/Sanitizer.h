//===- Sanitizer.h - AddressSanitizer for generated code --------*- C++ -*-===//
//
// Instrumenting the LLVM IR moka generates with AddressSanitizer, so that
// an out-of-bounds access of a compiled model is reported where it happens
// when the model runs in a process with the ASan runtime (moka's sanitizer
// build, see docs/robustness.md).
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_TARGET_SANITIZER_H
#define MOKA_TARGET_SANITIZER_H

namespace llvm {
class Module;
class TargetMachine;
} // namespace llvm

namespace moka {

/// Whether this process carries the AddressSanitizer runtime, so that code
/// it compiles and runs itself (moka-run's JIT) may be instrumented.
bool hostHasAddressSanitizer();

/// Marks every function defined in `module` sanitize_address and runs
/// LLVM's AddressSanitizer pass on it (after optimization, as clang does).
/// Globals register through arrays rather than linker sections, which works
/// in a JIT as well as in an object file.
void instrumentWithAddressSanitizer(llvm::Module &module,
                                    llvm::TargetMachine *targetMachine);

} // namespace moka

#endif // MOKA_TARGET_SANITIZER_H
