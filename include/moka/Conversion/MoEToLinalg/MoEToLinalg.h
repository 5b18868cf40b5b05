//===- MoEToLinalg.h - Lowering of `moe` to `linalg` ------------*- C++ -*-===//
//
// Patterns that rewrite `moe` operations as linalg, scf and tensor ops.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_CONVERSION_MOETOLINALG_MOETOLINALG_H
#define MOKA_CONVERSION_MOETOLINALG_MOETOLINALG_H

#include "mlir/IR/PatternMatch.h"

namespace moka {

/// With `cpuKernels`, small batches of experts become explicit vector code
/// for CPUs (see convert-moe-to-linalg).
void populateMoEToLinalgConversionPatterns(mlir::RewritePatternSet &patterns,
                                           bool cpuKernels = false);

} // namespace moka

#endif // MOKA_CONVERSION_MOETOLINALG_MOETOLINALG_H
