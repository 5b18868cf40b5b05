//===- moka-run.cpp - Run one function of a moka module on the CPU --------===//
//
// Compiles a .mlir module with moka's CPU pipeline, JIT-compiles it for the
// host and calls one function on .npy inputs, writing .npy outputs:
//
//   moka-run model.mlir --function=NAME --input=@x.npy ... --output=@y.npy
//            [--benchmark=N]
//
// Arguments and results must be ranked tensors. bf16 tensors are exchanged
// as uint16 arrays holding the raw bfloat16 bits.
//
//===----------------------------------------------------------------------===//

#include "moka/InitAll.h"
#include "moka/Pipelines/Pipelines.h"
#include "moka/Runtime/Allocator.h"
#include "moka/Runtime/CudaRuntime.h"
#include "moka/Runtime/Invoke.h"
#include "moka/Runtime/MemRefCopy.h"
#include "moka/Runtime/Npy.h"
#include "moka/Target/ModelFile.h"
#include "moka/Target/Sanitizer.h"
#include "moka/Target/Weights.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/ExecutionEngine/Orc/Mangling.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <unistd.h>

using namespace mlir;
namespace cl = llvm::cl;

static cl::opt<std::string>
    inputFilename(cl::Positional, cl::desc("<input .mlir file>"), cl::Required);
static cl::opt<std::string>
    functionName("function", cl::desc("Function to run"), cl::init("main"));
static cl::list<std::string>
    inputArgs("input", cl::desc("Argument as @file.npy, in order"));
static cl::list<std::string>
    outputArgs("output", cl::desc("Where to write a result, @file.npy"));
static cl::opt<unsigned>
    benchmarkRuns("benchmark",
                  cl::desc("Time N further runs and print the median"),
                  cl::init(0));
static cl::opt<bool> serial("serial",
                            cl::desc("Run parallel loops on one thread"),
                            cl::init(false));
static cl::opt<std::string> weightsFile(
    "weights",
    cl::desc("safetensors file with the module's weights (default: the "
             "module's moka.weights attribute)"));
static cl::opt<std::string>
    device("device", cl::desc("Where to run: cpu, or cuda (an NVIDIA GPU)"),
           cl::init("cpu"));
static cl::opt<std::string>
    chip("chip", cl::desc("GPU architecture to compile for with --device=cuda "
                          "(default: the device's)"));
static cl::opt<int64_t> vectorSize("vector-size",
                                   cl::desc("Vector tile size (elements)"),
                                   cl::init(64));
static cl::opt<std::string> sanitize(
    "sanitize",
    cl::desc("Instrument the generated code: 'address' (AddressSanitizer; "
             "the default when moka-run itself is built with it) or 'none'"));

namespace {

[[noreturn]] void fail(const llvm::Twine &message) {
  llvm::errs() << "moka-run: error: " << message << "\n";
  std::exit(1);
}

std::string stripAt(const std::string &arg) {
  return !arg.empty() && arg[0] == '@' ? arg.substr(1) : arg;
}

/// The .npy dtype that carries tensors of element type `type`.
std::optional<moka::NpyDType> dtypeFor(Type type) {
  if (type.isF64())
    return moka::NpyDType::F64;
  if (type.isF32())
    return moka::NpyDType::F32;
  if (type.isF16())
    return moka::NpyDType::F16;
  if (type.isBF16())
    return moka::NpyDType::U16;
  if (type.isSignlessInteger(1))
    return moka::NpyDType::Bool;
  if (type.isSignlessInteger(8))
    return moka::NpyDType::I8;
  if (type.isSignlessInteger(32))
    return moka::NpyDType::I32;
  if (type.isSignlessInteger(64))
    return moka::NpyDType::I64;
  return std::nullopt;
}

std::string typeString(Type type) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << type;
  return s;
}

std::string shapeString(llvm::ArrayRef<int64_t> shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

/// A memref descriptor laid out as the LLVM lowering expects: allocated and
/// aligned pointers, offset, sizes and strides, all 8 bytes wide.
struct Descriptor {
  std::vector<int64_t> words;
  void *pointer() { return words.data(); }
};

/// Run-time checks in generated code (cf.assert) print their message and
/// abort; turn that into moka-run's ordinary error exit.
extern "C" void onAbort(int) {
  static const char message[] =
      "\nmoka-run: error: a run-time check of the compiled function failed "
      "(message above)\n";
  ssize_t ignored = write(STDERR_FILENO, message, sizeof(message) - 1);
  (void)ignored;
  _exit(1);
}

/// An argument's memory: host memory, or CUDA managed memory on a GPU.
struct Buffer {
  void *data = nullptr;
  bool managed = false;
  ~Buffer() {
    if (managed)
      moka::cudaFreeManaged(data);
    else
      std::free(data);
  }
};

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM initLLVM(argc, argv);
  cl::ParseCommandLineOptions(argc, argv,
                              "moka-run: run a function of a moka module\n");

  MLIRContext context;
  moka::configureToolContext(context);

  std::string errorMessage;
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  OwningOpRef<ModuleOp> module = moka::readModelFile(
      context, sourceMgr, inputFilename,
      /*gpu=*/device == "cuda", errorMessage, [&](Diagnostic &diag) {
        diagnostics.emitDiagnostic(diag.getLocation(), diag.str(),
                                   diag.getSeverity());
        fail("'" + inputFilename + "' could not be parsed");
      });
  if (!module)
    fail(errorMessage);
  if (failed(moka::loadWeights(*module, inputFilename, weightsFile)))
    fail("the weights of '" + inputFilename + "' could not be loaded");

  auto func = module->lookupSymbol<func::FuncOp>(functionName);
  if (!func || func.isExternal())
    fail("no function @" + functionName + " with a body in '" + inputFilename +
         "'");
  FunctionType fnType = func.getFunctionType();

  // Check the arguments against the signature before compiling anything.
  if (inputArgs.size() != fnType.getNumInputs())
    fail("@" + functionName + " takes " + llvm::Twine(fnType.getNumInputs()) +
         " arguments, " + llvm::Twine(inputArgs.size()) + " --input given");
  if (outputArgs.size() > fnType.getNumResults())
    fail("@" + functionName + " has " + llvm::Twine(fnType.getNumResults()) +
         " results, " + llvm::Twine(outputArgs.size()) + " --output given");

  std::vector<moka::NpyArray> arrays(fnType.getNumInputs());
  for (auto [i, type] : llvm::enumerate(fnType.getInputs())) {
    auto tensorType = dyn_cast<RankedTensorType>(type);
    if (!tensorType || !dtypeFor(tensorType.getElementType()))
      fail("argument #" + llvm::Twine(i) + " of @" + functionName +
           " has type " + typeString(type) +
           "; moka-run passes ranked tensors of f64, f32, f16, bf16, i1, i8, "
           "i32 or i64");
    std::string path = stripAt(inputArgs[i]);
    std::string error;
    if (!moka::readNpyFile(path, arrays[i], error))
      fail("input #" + llvm::Twine(i) + ": " + error);
    moka::NpyDType expected = *dtypeFor(tensorType.getElementType());
    if (arrays[i].dtype != expected)
      fail("input #" + llvm::Twine(i) + " ('" + path + "') has dtype '" +
           moka::npyDescr(arrays[i].dtype) + "' but @" + functionName +
           " expects " + typeString(type) + " (dtype '" +
           moka::npyDescr(expected) + "')");
    bool match =
        static_cast<int64_t>(arrays[i].shape.size()) == tensorType.getRank();
    for (int64_t d = 0; match && d < tensorType.getRank(); ++d)
      match = tensorType.isDynamicDim(d) ||
              tensorType.getDimSize(d) == arrays[i].shape[d];
    if (!match)
      fail("input #" + llvm::Twine(i) + " ('" + path + "') has shape " +
           shapeString(arrays[i].shape) + " but @" + functionName +
           " expects " + typeString(type));
  }
  for (auto [i, type] : llvm::enumerate(fnType.getResults())) {
    auto tensorType = dyn_cast<RankedTensorType>(type);
    if (!tensorType || !dtypeFor(tensorType.getElementType()))
      fail("result #" + llvm::Twine(i) + " of @" + functionName + " has type " +
           typeString(type) +
           "; moka-run returns ranked tensors of f64, f32, f16, bf16, i1, "
           "i8, i32 or i64");
  }

  // Compile.
  bool gpu = device == "cuda";
  if (!gpu && device != "cpu")
    fail("unknown device '" + device + "' (cpu or cuda)");
  if (chip.getNumOccurrences() && !gpu)
    fail("--chip applies to --device=cuda only");
  if (sanitize.getNumOccurrences() && sanitize != "address" &&
      sanitize != "none")
    fail("unknown sanitizer '" + sanitize + "' (address or none)");
  bool instrument = sanitize.getNumOccurrences()
                        ? sanitize == "address"
                        : moka::hostHasAddressSanitizer() && !gpu;
  if (instrument && !moka::hostHasAddressSanitizer())
    fail("--sanitize=address needs a moka-run built with AddressSanitizer "
         "(scripts/sanitize.sh)");
  if (instrument && gpu)
    fail("--sanitize=address applies to --device=cpu only");
  func->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(),
                UnitAttr::get(&context));
  PassManager pm(&context);
  if (gpu) {
    std::string why;
    if (!moka::cudaAvailable(why))
      fail("--device=cuda: " + why);
    moka::GPUPipelineOptions options;
    options.chip = chip.empty() ? moka::cudaDeviceChip() : chip.getValue();
    options.format = "isa"; // PTX, compiled for the device by the driver.
    std::string problem = moka::checkGPUPipelineOptions(options);
    if (!problem.empty())
      fail("--device=cuda: " + problem);
    moka::buildGPUPipeline(pm, options);
  } else {
    moka::CPUPipelineOptions options;
    options.parallel = !serial;
    options.vectorSize = vectorSize;
    moka::buildCPUPipeline(pm, options);
  }
  if (failed(pm.run(*module)))
    fail("compilation of '" + inputFilename + "' failed");

  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  auto tmBuilder = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!tmBuilder)
    fail("cannot target the host: " + llvm::toString(tmBuilder.takeError()));
  tmBuilder->setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
  auto tm = tmBuilder->createTargetMachine();
  if (!tm)
    fail("cannot create a target machine: " + llvm::toString(tm.takeError()));
  llvm::TargetMachine *machine = tm->get();
  auto optimize = makeOptimizingTransformer(3, 0, machine);
  auto transformer = [&](llvm::Module *m) -> llvm::Error {
    if (llvm::Error err = optimize(m))
      return err;
    if (instrument)
      moka::instrumentWithAddressSanitizer(*m, machine);
    return llvm::Error::success();
  };
  ExecutionEngineOptions engineOptions;
  engineOptions.transformer = transformer;
  engineOptions.jitCodeGenOptLevel = llvm::CodeGenOptLevel::Aggressive;
  SmallVector<StringRef> libs;
  if (!serial && !gpu)
    libs.push_back(MOKA_OPENMP_LIBRARY);
  engineOptions.sharedLibPaths = libs;
  auto engine = ExecutionEngine::create(*module, engineOptions, std::move(*tm));
  if (!engine)
    fail("JIT compilation failed: " + llvm::toString(engine.takeError()));
  // Generated code allocates through moka's caching allocator.
  (*engine)->registerSymbols([](llvm::orc::MangleAndInterner interner) {
    llvm::orc::SymbolMap map;
    map[interner("malloc")] = {
        llvm::orc::ExecutorAddr::fromPtr(&mokaAllocOrFail),
        llvm::JITSymbolFlags::Exported};
    map[interner("free")] = {llvm::orc::ExecutorAddr::fromPtr(&mokaFree),
                             llvm::JITSymbolFlags::Exported};
    map[interner("memrefCopy")] = {
        llvm::orc::ExecutorAddr::fromPtr(&mokaMemRefCopy),
        llvm::JITSymbolFlags::Exported};
    map[interner("mokaCheckFailed")] = {
        llvm::orc::ExecutorAddr::fromPtr(&mokaCheckFailed),
        llvm::JITSymbolFlags::Exported};
    for (const auto &[name, address] : moka::cudaRuntimeSymbols())
      map[interner(name)] = {llvm::orc::ExecutorAddr::fromPtr(address),
                             llvm::JITSymbolFlags::Exported};
    return map;
  });

  // Marshal the inputs into 64-byte aligned buffers and descriptors.
  std::vector<Buffer> buffers(arrays.size());
  std::vector<Descriptor> descriptors(arrays.size());
  std::set<void *> inputPointers;
  for (size_t i = 0; i < arrays.size(); ++i) {
    // Padded to whole cache lines, except under the sanitizer: there the
    // exact size makes any read past the array a reported error.
    size_t bytes = std::max<size_t>(arrays[i].data.size(), instrument ? 1 : 64);
    if (!instrument)
      bytes = (bytes + 63) / 64 * 64;
    buffers[i].managed = gpu;
    if (gpu)
      buffers[i].data = moka::cudaAllocManaged(bytes);
    else if (posix_memalign(&buffers[i].data, 64, bytes) != 0)
      buffers[i].data = nullptr;
    if (!buffers[i].data)
      fail("out of memory allocating input #" + llvm::Twine(i));
    if (!arrays[i].data.empty()) // An empty vector's data() may be null.
      std::memcpy(buffers[i].data, arrays[i].data.data(),
                  arrays[i].data.size());
    inputPointers.insert(buffers[i].data);
    auto &w = descriptors[i].words;
    w.push_back(reinterpret_cast<int64_t>(buffers[i].data));
    w.push_back(reinterpret_cast<int64_t>(buffers[i].data));
    w.push_back(0);
    const auto &shape = arrays[i].shape;
    for (int64_t d : shape)
      w.push_back(d);
    int64_t stride = 1;
    std::vector<int64_t> strides(shape.size());
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      strides[d] = stride;
      stride *= shape[d];
    }
    w.insert(w.end(), strides.begin(), strides.end());
  }

  size_t resultWords = 0;
  for (Type type : fnType.getResults())
    resultWords += 3 + 2 * cast<RankedTensorType>(type).getRank();
  std::vector<int64_t> resultStorage(std::max<size_t>(resultWords, 1));

  std::vector<void *> pointers;
  void *resultPointer = resultStorage.data();
  std::vector<void *> packed;
  if (fnType.getNumResults() > 0)
    packed.push_back(&resultPointer);
  for (Descriptor &d : descriptors)
    pointers.push_back(d.pointer());
  for (void *&p : pointers)
    packed.push_back(&p);

  std::string entry = "_mlir_ciface_" + functionName;
  auto invoke = [&]() {
    if (llvm::Error err = (*engine)->invokePacked(entry, packed))
      fail("cannot call @" + functionName + ": " +
           llvm::toString(std::move(err)));
  };
  auto releaseResults = [&]() {
    std::set<void *> released;
    size_t offset = 0;
    for (Type type : fnType.getResults()) {
      int64_t rank = cast<RankedTensorType>(type).getRank();
      void *allocated = reinterpret_cast<void *>(resultStorage[offset]);
      if (!inputPointers.count(allocated) &&
          released.insert(allocated).second) {
        if (gpu)
          moka::cudaFreeManaged(allocated);
        else
          mokaFree(allocated);
      }
      offset += 3 + 2 * rank;
    }
  };

  // The generated checks print with puts(): unbuffered, so their message is
  // out before the abort.
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  std::signal(SIGABRT, onAbort);
  invoke();

  // Copy the results out (following their strides) and write them.
  size_t offset = 0;
  for (auto [i, type] : llvm::enumerate(fnType.getResults())) {
    auto tensorType = cast<RankedTensorType>(type);
    int64_t rank = tensorType.getRank();
    moka::NpyArray array;
    array.dtype = *dtypeFor(tensorType.getElementType());
    size_t eltSize = moka::npyElementSize(array.dtype);
    char *aligned = reinterpret_cast<char *>(resultStorage[offset + 1]);
    int64_t base = resultStorage[offset + 2];
    std::vector<int64_t> sizes(resultStorage.begin() + offset + 3,
                               resultStorage.begin() + offset + 3 + rank);
    std::vector<int64_t> strides(resultStorage.begin() + offset + 3 + rank,
                                 resultStorage.begin() + offset + 3 + 2 * rank);
    array.shape = sizes;
    int64_t count = array.numElements();
    array.data.resize(static_cast<size_t>(count) * eltSize);
    std::vector<int64_t> index(rank, 0);
    for (int64_t e = 0; e < count; ++e) {
      int64_t linear = base;
      for (int64_t d = 0; d < rank; ++d)
        linear += index[d] * strides[d];
      std::memcpy(array.data.data() + e * eltSize, aligned + linear * eltSize,
                  eltSize);
      for (int64_t d = rank - 1; d >= 0; --d) {
        if (++index[d] < sizes[d])
          break;
        index[d] = 0;
      }
    }
    offset += 3 + 2 * rank;

    if (i < outputArgs.size()) {
      std::string error;
      if (!moka::writeNpyFile(stripAt(outputArgs[i]), array, error))
        fail(error);
    } else {
      llvm::outs() << "result #" << i << ": " << typeString(type) << " shape "
                   << shapeString(array.shape) << "\n";
    }
  }
  releaseResults();

  if (benchmarkRuns > 0) {
    std::vector<double> times;
    for (unsigned r = 0; r < benchmarkRuns; ++r) {
      auto start = std::chrono::steady_clock::now();
      invoke();
      auto stop = std::chrono::steady_clock::now();
      releaseResults();
      times.push_back(
          std::chrono::duration<double, std::milli>(stop - start).count());
    }
    std::sort(times.begin(), times.end());
    double median =
        times.size() % 2
            ? times[times.size() / 2]
            : 0.5 * (times[times.size() / 2 - 1] + times[times.size() / 2]);
    llvm::outs() << llvm::format("benchmark: @%s median %.4f ms, min %.4f ms "
                                 "over %u runs\n",
                                 functionName.c_str(), median, times.front(),
                                 benchmarkRuns.getValue());
  }
  return 0;
}
