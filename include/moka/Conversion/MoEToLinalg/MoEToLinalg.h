//===- MoEToLinalg.h - Lowering of `moe` to `linalg` ------------*- C++ -*-===//
//
// Patterns that rewrite `moe` operations as linalg, scf and tensor ops.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_CONVERSION_MOETOLINALG_MOETOLINALG_H
#define MOKA_CONVERSION_MOETOLINALG_MOETOLINALG_H

#include "mlir/IR/PatternMatch.h"

namespace moka {

/// How moe.experts and moe.shared_experts lower (see convert-moe-to-linalg).
struct MoEKernelOptions {
  /// Small batches as explicit vector code for CPUs.
  bool cpuKernels = false;
  /// Grouped matrix products with tiles staged in workgroup memory, in
  /// loops mapped to GPU blocks and threads.
  bool gpuKernels = false;
  /// With gpuKernels: the tiles in GPU workgroup memory (else in default
  /// memory, so that the same loops run on a CPU).
  bool workgroupMemory = true;
};

void populateMoEToLinalgConversionPatterns(
    mlir::RewritePatternSet &patterns, const MoEKernelOptions &kernels = {});

} // namespace moka

#endif // MOKA_CONVERSION_MOETOLINALG_MOETOLINALG_H
