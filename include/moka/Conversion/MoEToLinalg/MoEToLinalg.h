//===- MoEToLinalg.h - Lowering of `moe` to `linalg` ------------*- C++ -*-===//
//
// Patterns that rewrite `moe` operations as linalg, scf and tensor ops.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_CONVERSION_MOETOLINALG_MOETOLINALG_H
#define MOKA_CONVERSION_MOETOLINALG_MOETOLINALG_H

#include "mlir/IR/PatternMatch.h"

namespace moka {

void populateMoEToLinalgConversionPatterns(mlir::RewritePatternSet &patterns);

} // namespace moka

#endif // MOKA_CONVERSION_MOETOLINALG_MOETOLINALG_H
