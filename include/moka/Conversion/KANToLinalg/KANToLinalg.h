//===- KANToLinalg.h - Lowering of `kan` to `linalg` ------------*- C++ -*-===//
//
// Patterns that rewrite `kan` operations as `linalg` on tensors.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_CONVERSION_KANTOLINALG_KANTOLINALG_H
#define MOKA_CONVERSION_KANTOLINALG_KANTOLINALG_H

namespace mlir {
class RewritePatternSet;
} // namespace mlir

namespace moka {

/// Adds the patterns that lower every `kan` operation to `linalg`, `tensor`,
/// `arith`, `math` and `cf` operations.
void populateKANToLinalgConversionPatterns(mlir::RewritePatternSet &patterns);

} // namespace moka

#endif // MOKA_CONVERSION_KANTOLINALG_KANTOLINALG_H
