//===- CInterface.h - The C ABI of compiled models --------------*- C++ -*-===//
//
// Every public function `@f` of a model becomes the C function
// `moka_status PREFIX_f(const moka_tensor *arg0, ..., moka_tensor *result0,
// ...)` (see moka/moka.h). Its body, generated here in the LLVM dialect,
// hands the tensors and the function's signature to the runtime's
// mokaInvoke, which validates them, builds memref descriptors and calls the
// compiled function through a "packed" wrapper of its `_mlir_ciface_`
// entry. Each library also exports `const char *PREFIX_moka_manifest(void)`,
// the signatures of all its functions, one per line.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_TARGET_CINTERFACE_H
#define MOKA_TARGET_CINTERFACE_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/Support/LLVM.h"

#include <string>

namespace moka {

/// One exported function: its name in the module, its C name and its
/// tensor types.
struct CFunction {
  std::string name;
  std::string cName;
  llvm::SmallVector<mlir::RankedTensorType> inputs;
  llvm::SmallVector<mlir::RankedTensorType> results;

  /// `name(f32[?x768],i64[4])->(f32[?x768])`, what mokaInvoke parses.
  std::string signature() const;
};

/// Collects the public functions of `module` (on tensors, before any
/// lowering) with C names `prefix_NAME`. Fails with an error on the module
/// when a public function has an argument or result the C ABI does not
/// carry, when `prefix` or a function name is not a C identifier, or when
/// there is no public function.
mlir::FailureOr<llvm::SmallVector<CFunction>>
collectCInterface(mlir::ModuleOp module, llvm::StringRef prefix);

/// Marks the functions to export so the LLVM lowering emits their
/// `_mlir_ciface_` entries; makes every other function private.
void prepareForCInterface(mlir::ModuleOp module,
                          llvm::ArrayRef<CFunction> functions);

/// Adds the C entry points and the manifest to `module` (in the LLVM
/// dialect, after lowering), makes every other symbol internal and points
/// allocation and copies at the runtime.
mlir::LogicalResult addCInterface(mlir::ModuleOp module, llvm::StringRef prefix,
                                  llvm::ArrayRef<CFunction> functions);

/// Writes the C header declaring the functions of `functions`.
void writeCHeader(llvm::raw_ostream &os, llvm::StringRef prefix,
                  llvm::StringRef source, llvm::ArrayRef<CFunction> functions);

} // namespace moka

#endif // MOKA_TARGET_CINTERFACE_H
