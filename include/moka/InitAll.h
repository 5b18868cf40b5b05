//===- InitAll.h - Registration of what moka's tools use --------*- C++ -*-===//
//
// One registration entry point shared by every moka tool: moka's dialects,
// the upstream dialects and interface models its pipelines need, and the
// passes and pipelines that moka-opt exposes. Nothing else is registered.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_INITALL_H
#define MOKA_INITALL_H

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace moka {

/// Adds moka's dialects, the upstream dialects moka lowers through and their
/// external interface models (bufferization, tiling, value bounds, ...).
void registerMokaDialects(mlir::DialectRegistry &registry);

/// Adds the translations from the LLVM dialect (and OpenMP) to LLVM IR.
void registerMokaTranslations(mlir::DialectRegistry &registry);

/// Registers moka's passes and pipelines and the upstream passes they use.
void registerMokaPasses();

} // namespace moka

#endif // MOKA_INITALL_H
