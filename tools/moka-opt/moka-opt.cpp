//===- moka-opt.cpp - moka's optimizer driver -----------------------------===//
//
// An mlir-opt style driver over moka's dialects, passes and pipelines and the
// upstream pieces they use.
//
//===----------------------------------------------------------------------===//

#include "moka/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  moka::registerMokaDialects(registry);
  moka::registerMokaTranslations(registry);
  moka::registerMokaPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "moka optimizer driver\n", registry));
}
