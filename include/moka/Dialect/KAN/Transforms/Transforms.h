//===- Transforms.h - Rewrites of the `kan` dialect -------------*- C++ -*-===//
//
// Builders of the KAN basis arithmetic, rewrite patterns and interface models
// of the `kan` dialect.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_DIALECT_KAN_TRANSFORMS_TRANSFORMS_H
#define MOKA_DIALECT_KAN_TRANSFORMS_TRANSFORMS_H

#include "moka/Dialect/KAN/IR/KANOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/PatternMatch.h"

namespace moka::kan {

/// Evaluates `P(x) / Q(x)` in f32 by Horner's rule. `num` holds the m + 1
/// numerator coefficients (lowest degree first) and `absDen` the n
/// denominator coefficients with their absolute value already taken, all f32
/// scalars or vectors of the shape of `x`.
mlir::Value buildRational(mlir::OpBuilder &b, mlir::Location loc, mlir::Value x,
                          mlir::ValueRange num, mlir::ValueRange absDen);

/// The basis of a non-rational `kan.layer`, with defaults applied.
struct BasisParams {
  Basis basis;
  int64_t gridSize;
  int64_t order;
  int64_t degree;
  int64_t numFunctions;
  double gridMin;
  double gridMax;

  static BasisParams get(LayerOp op);
};

/// Evaluates basis function number `k` (an index) of `params` at the f32
/// scalar `x`.
mlir::Value buildBasisFunction(mlir::OpBuilder &b, mlir::Location loc,
                               const BasisParams &params, mlir::Value x,
                               mlir::Value k);

/// Emits a run-time check (`cf.assert` with `message`) that the sizes `lhs`
/// and `rhs` agree, unless both are static (the verifiers compare those).
void assertSameSize(mlir::OpBuilder &b, mlir::Location loc,
                    mlir::OpFoldResult lhs, mlir::OpFoldResult rhs,
                    llvm::StringRef message);

/// `x * sigmoid(x)` for an f32 scalar.
mlir::Value buildSiLU(mlir::OpBuilder &b, mlir::Location loc, mlir::Value x);

/// Patterns that expand `kan.layer` into basis expansions and contractions.
/// Weights are read as contiguous panels of `weightPanel` output channels
/// when that divides Cout (0: never).
void populateExpandLayerPatterns(mlir::RewritePatternSet &patterns,
                                 int64_t weightPanel = 32);

/// Attaches `TilingInterface` to `kan.rational` and `kan.layer`.
void registerTilingInterfaceExternalModels(mlir::DialectRegistry &registry);

} // namespace moka::kan

#endif // MOKA_DIALECT_KAN_TRANSFORMS_TRANSFORMS_H
