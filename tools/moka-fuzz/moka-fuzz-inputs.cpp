//===- moka-fuzz-inputs.cpp - libFuzzer harness: the tools' input files ---===//
//
// The files moka's tools read besides IR: the first byte picks the reader,
// the rest is the file. 0: a .npy array (moka-run's inputs). 1: a
// safetensors file of weights, loaded into a module whose constants name
// tensors of several dtypes and shapes (mokac --weights, moka-run).
// Rejections are expected; a crash, a sanitizer report, a hang or an
// allocation out of proportion to the input is a finding.
//
//===----------------------------------------------------------------------===//

#include "moka/InitAll.h"
#include "moka/Runtime/Npy.h"
#include "moka/Target/Weights.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <unistd.h>

using namespace mlir;

namespace {

constexpr const char *kModule = R"mlir(
module attributes {moka.weights = "unused.safetensors"} {
  func.func @f() -> (tensor<4x8xf32>, tensor<3xf16>, tensor<2x2xbf16>,
                     tensor<5xi8>, tensor<f64>, tensor<0x3xf32>) {
    %a = arith.constant dense_resource<w.a> : tensor<4x8xf32>
    %b = arith.constant dense_resource<w.b> : tensor<3xf16>
    %c = arith.constant dense_resource<c> : tensor<2x2xbf16>
    %d = arith.constant dense_resource<d> : tensor<5xi8>
    %e = arith.constant dense_resource<e> : tensor<f64>
    %z = arith.constant dense_resource<z> : tensor<0x3xf32>
    return %a, %b, %c, %d, %e, %z : tensor<4x8xf32>, tensor<3xf16>,
      tensor<2x2xbf16>, tensor<5xi8>, tensor<f64>, tensor<0x3xf32>
  }
}
)mlir";

void fuzzSafetensors(llvm::StringRef bytes) {
  static std::string path = [] {
    llvm::SmallString<128> p;
    int fd;
    if (llvm::sys::fs::createTemporaryFile("moka-fuzz", "safetensors", fd, p))
      abort();
    close(fd);
    return std::string(p);
  }();
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec);
    if (ec)
      abort();
    os << bytes;
  }
  DialectRegistry registry;
  moka::registerMokaDialects(registry);
  MLIRContext context(registry, MLIRContext::Threading::DISABLED);
  ScopedDiagnosticHandler discard(&context,
                                  [](Diagnostic &) { return success(); });
  OwningOpRef<ModuleOp> module =
      parseSourceString<ModuleOp>(kModule, ParserConfig(&context));
  if (!module)
    abort(); // The harness's own module must parse.
  (void)moka::loadWeights(*module, "fuzz.mlir", path);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  llvm::StringRef bytes(reinterpret_cast<const char *>(data) + 1, size - 1);
  switch (data[0] % 2) {
  case 0: {
    moka::NpyArray array;
    std::string error;
    if (moka::parseNpy(bytes.str(), array, error) &&
        array.data.size() !=
            size_t(array.numElements()) * moka::npyElementSize(array.dtype))
      abort(); // An accepted array must hold exactly its shape's bytes.
    break;
  }
  case 1:
    fuzzSafetensors(bytes);
    break;
  }
  return 0;
}
