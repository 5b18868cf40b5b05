//===- Weights.h - Model weights from safetensors files ---------*- C++ -*-===//
//
// A model's weights are `dense_resource<key>` constants whose data is not in
// the .mlir text: it is in a safetensors file, named by the module attribute
// `moka.weights = "file.safetensors"` (relative to the .mlir file) or given
// to the tools explicitly. Resources the module defines inline (a
// `dialect_resources` section) are used as they are.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_TARGET_WEIGHTS_H
#define MOKA_TARGET_WEIGHTS_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LLVM.h"

namespace moka {

/// The module attribute naming a module's weights file.
constexpr llvm::StringLiteral kWeightsAttrName = "moka.weights";

/// Supplies the data of every dense_resource constant of `module` that has
/// none, from `weightsPath` if not empty, else from the file the module's
/// `moka.weights` attribute names (relative to the directory of
/// `modulePath`). Checks each tensor's dtype and shape against its use;
/// reports problems (missing file or tensor, malformed file, mismatched
/// type) as errors on `module`.
mlir::LogicalResult loadWeights(mlir::ModuleOp module,
                                llvm::StringRef modulePath,
                                llvm::StringRef weightsPath);

} // namespace moka

#endif // MOKA_TARGET_WEIGHTS_H
