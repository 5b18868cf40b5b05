//===- ModelFile.h - Reading a model for the tools --------------*- C++ -*-===//
//
// What moka-run and mokac do first with a .mlir file: parse and verify it,
// and expand its kv caches into their storage tensors (the signature a
// caller sees).
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_TARGET_MODELFILE_H
#define MOKA_TARGET_MODELFILE_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/SourceMgr.h"

#include <string>

namespace moka {

/// Loads moka's dialects and translations into `context`; diagnostics do
/// not print the whole operation (tools report errors on user IR).
void configureToolContext(mlir::MLIRContext &context);

/// Called with the first error of a parse; must not return (exit, or jump
/// out): some upstream parsers crash when they carry on after an error.
using ParseErrorFn = llvm::function_ref<void(mlir::Diagnostic &)>;

/// Parses `path` into `context` (diagnostics through `sourceMgr`'s handler
/// if the caller installed one; the first parse error to `onParseError`),
/// verifies it and expands its caches (attention with the kernels for
/// GPUs with `gpu`, else with those for CPUs). Returns null with `error`
/// set on failure.
mlir::OwningOpRef<mlir::ModuleOp> readModelFile(mlir::MLIRContext &context,
                                                llvm::SourceMgr &sourceMgr,
                                                llvm::StringRef path, bool gpu,
                                                std::string &error,
                                                ParseErrorFn onParseError);

} // namespace moka

#endif // MOKA_TARGET_MODELFILE_H
