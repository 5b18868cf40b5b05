//===- Passes.h - moka conversion passes ------------------------*- C++ -*-===//
//
// Declares moka's conversion passes and their registration.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_CONVERSION_PASSES_H
#define MOKA_CONVERSION_PASSES_H

#include "moka/Conversion/KANToLinalg/KANToLinalg.h"
#include "moka/Dialect/KAN/IR/KANDialect.h"

#include "mlir/Pass/Pass.h"

namespace moka {

#define GEN_PASS_DECL
#define GEN_PASS_REGISTRATION
#include "moka/Conversion/Passes.h.inc"

} // namespace moka

#endif // MOKA_CONVERSION_PASSES_H
