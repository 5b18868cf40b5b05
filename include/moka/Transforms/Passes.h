//===- Passes.h - moka code generation passes -------------------*- C++ -*-===//
//
// Declares moka's target-independent code generation passes.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_TRANSFORMS_PASSES_H
#define MOKA_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"

namespace moka {

#define GEN_PASS_DECL
#define GEN_PASS_REGISTRATION
#include "moka/Transforms/Passes.h.inc"

} // namespace moka

#endif // MOKA_TRANSFORMS_PASSES_H
