//===- mokac.cpp - Ahead-of-time compiler of moka models ------------------===//
//
//   mokac MODEL.mlir -o OUT --emit=mlir|llvm|obj|static-lib|shared-lib|header
//         [--target=host|x86_64] [--cpu=NAME] [-O0..-O3] [--name=PREFIX]
//         [--weights=FILE.safetensors] [--serial]
//
// Compiles the public functions of a moka module into a native library with
// the C interface of moka/moka.h, declared by the header --emit=header
// writes. Output depends only on the input files and the flags.
//
//===----------------------------------------------------------------------===//

#include "moka/InitAll.h"
#include "moka/Pipelines/Pipelines.h"
#include "moka/Target/CInterface.h"
#include "moka/Target/ModelFile.h"
#include "moka/Target/Sanitizer.h"
#include "moka/Target/Weights.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Support/Timing.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Object/ArchiveWriter.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/SubtargetFeature.h"

using namespace mlir;
namespace cl = llvm::cl;

namespace {

enum class Emit { MLIR, LLVM, Obj, StaticLib, SharedLib, Header, PTX };
enum class TargetKind { Host, X86_64, NVPTX };

cl::OptionCategory category("mokac options");
cl::opt<std::string> inputFilename(cl::Positional, cl::desc("<model.mlir>"),
                                   cl::Required, cl::cat(category));
cl::opt<std::string> outputFilename("o", cl::desc("Output file"),
                                    cl::value_desc("path"), cl::Required,
                                    cl::cat(category));
cl::opt<Emit>
    emit("emit", cl::desc("What to write"), cl::init(Emit::Obj),
         cl::values(clEnumValN(Emit::MLIR, "mlir",
                               "the module lowered to the LLVM dialect"),
                    clEnumValN(Emit::LLVM, "llvm", "LLVM IR (text)"),
                    clEnumValN(Emit::Obj, "obj", "an object file"),
                    clEnumValN(Emit::StaticLib, "static-lib",
                               "a static library (link with the moka runtime)"),
                    clEnumValN(Emit::SharedLib, "shared-lib",
                               "a shared library with the moka runtime inside"),
                    clEnumValN(Emit::Header, "header",
                               "the C header of the library"),
                    clEnumValN(Emit::PTX, "ptx", "PTX for NVIDIA GPUs")),
         cl::cat(category));
cl::opt<TargetKind> target(
    "target", cl::desc("Target machine"), cl::init(TargetKind::Host),
    cl::values(clEnumValN(TargetKind::Host, "host", "this machine's CPU"),
               clEnumValN(TargetKind::X86_64, "x86_64",
                          "x86-64 Linux (CPU from --cpu, default x86-64-v3)"),
               clEnumValN(TargetKind::NVPTX, "nvptx", "NVIDIA GPUs")),
    cl::cat(category));
cl::opt<std::string> cpu("cpu",
                         cl::desc("CPU to tune and select "
                                  "instructions for (LLVM's names)"),
                         cl::cat(category));
cl::opt<std::string> chip("chip", cl::desc("GPU architecture (sm_80, sm_90)"),
                          cl::init("sm_90"), cl::cat(category));
cl::opt<unsigned> optLevel("O", cl::desc("Optimization level 0-3"), cl::Prefix,
                           cl::init(3), cl::cat(category));
cl::opt<std::string>
    modelName("name",
              cl::desc("Prefix of the C symbols (default: the file's stem)"),
              cl::cat(category));
cl::opt<std::string> weightsFile(
    "weights",
    cl::desc("safetensors file with the module's weights (default: the "
             "module's moka.weights attribute)"),
    cl::cat(category));
cl::opt<bool> serial("serial",
                     cl::desc("Run parallel loops on the calling thread only "
                              "(no OpenMP dependency)"),
                     cl::init(false), cl::cat(category));
cl::opt<std::string> sanitize(
    "sanitize",
    cl::desc("Instrument the generated code: 'address' (AddressSanitizer: "
             "the program that loads the model must carry the ASan runtime; "
             "the default of a mokac built with it) or 'none'"),
    cl::cat(category));

[[noreturn]] void fail(const llvm::Twine &message) {
  llvm::errs() << "mokac: error: " << message << "\n";
  std::exit(1);
}

/// The PTX ISA version for --chip: 7.0 reaches sm_80, 7.8 sm_90 and 8.0
/// sm_90a.
std::string ptxFeatures() {
  llvm::StringRef arch = llvm::StringRef(chip).drop_front(3);
  unsigned version = 0;
  (void)arch.take_while(llvm::isDigit).getAsInteger(10, version);
  return version >= 90 ? "+ptx80" : "+ptx70";
}

/// The default prefix: the input's stem with non-identifier characters
/// replaced by '_'.
std::string defaultName() {
  std::string stem = llvm::sys::path::stem(inputFilename).str();
  for (char &c : stem)
    if (!llvm::isAlnum(c) && c != '_')
      c = '_';
  if (stem.empty() || llvm::isDigit(stem[0]))
    stem = "model_" + stem;
  return stem;
}

std::unique_ptr<llvm::TargetMachine> createTargetMachine() {
  llvm::Triple triple;
  std::string cpuName = cpu, features;
  if (target == TargetKind::Host) {
    triple = llvm::Triple(llvm::sys::getProcessTriple());
    if (cpuName.empty()) {
      cpuName = llvm::sys::getHostCPUName().str();
      llvm::SubtargetFeatures f;
      for (const auto &[name, enabled] : llvm::sys::getHostCPUFeatures())
        f.AddFeature(name, enabled);
      features = f.getString();
    }
  } else {
    triple = llvm::Triple("x86_64-unknown-linux-gnu");
    if (cpuName.empty())
      cpuName = "x86-64-v3";
  }
  std::string error;
  const llvm::Target *t = llvm::TargetRegistry::lookupTarget(triple, error);
  if (!t)
    fail("cannot target '" + triple.str() + "': " + error);
  std::unique_ptr<llvm::MCSubtargetInfo> subtarget(
      t->createMCSubtargetInfo(triple, cpuName, ""));
  if (!subtarget || !subtarget->isCPUStringValid(cpuName))
    fail("unknown CPU '" + cpuName + "' for " + triple.str());
  llvm::CodeGenOptLevel level = optLevel == 0   ? llvm::CodeGenOptLevel::None
                                : optLevel == 1 ? llvm::CodeGenOptLevel::Less
                                : optLevel == 2
                                    ? llvm::CodeGenOptLevel::Default
                                    : llvm::CodeGenOptLevel::Aggressive;
  llvm::TargetOptions options;
  std::unique_ptr<llvm::TargetMachine> tm(
      t->createTargetMachine(triple, cpuName, features, options,
                             llvm::Reloc::PIC_, std::nullopt, level));
  if (!tm)
    fail("cannot create a target machine for " + triple.str());
  return tm;
}

void writeFile(llvm::StringRef path, llvm::StringRef data, bool binary) {
  std::error_code ec;
  llvm::raw_fd_ostream os(
      path, ec, binary ? llvm::sys::fs::OF_None : llvm::sys::fs::OF_Text);
  if (ec)
    fail("cannot write '" + path + "': " + ec.message());
  os << data;
  os.close();
  if (os.has_error())
    fail("cannot write '" + path + "': " + os.error().message());
}

/// The runtime library: in the library directory next to this binary's.
std::string runtimeArchive(const char *argv0) {
  if (const char *env = std::getenv("MOKA_RUNTIME_LIBRARY"))
    return env;
  std::string exe = llvm::sys::fs::getMainExecutable(
      argv0, reinterpret_cast<void *>(&runtimeArchive));
  llvm::StringRef prefix =
      llvm::sys::path::parent_path(llvm::sys::path::parent_path(exe));
  // Installed (the package's library directory), else the build tree.
  llvm::SmallString<256> path(prefix);
  llvm::sys::path::append(path, MOKA_INSTALL_LIBDIR, "libmoka_runtime.a");
  if (llvm::sys::fs::exists(path))
    return std::string(path);
  path = prefix;
  llvm::sys::path::append(path, "lib", "libmoka_runtime.a");
  return std::string(path);
}

/// Whether to instrument the generated code with AddressSanitizer.
bool instrumentAddresses() {
  if (sanitize.getNumOccurrences())
    return sanitize == "address";
  return moka::hostHasAddressSanitizer();
}

/// Links `object` with the runtime into the shared library `output`.
void linkSharedLibrary(const char *argv0, llvm::StringRef object,
                       llvm::StringRef output) {
  // fail() exits past the caller's FileRemover: remove the object first.
  auto failLink = [&](const llvm::Twine &message) {
    llvm::sys::fs::remove(object);
    fail(message);
  };
  std::string runtime = runtimeArchive(argv0);
  if (!llvm::sys::fs::exists(runtime))
    failLink("the moka runtime library '" + runtime +
             "' is missing (set MOKA_RUNTIME_LIBRARY)");
  std::string driver;
  if (const char *env = std::getenv("MOKA_CXX"))
    driver = env;
  for (const char *name : {"c++", "g++", "clang++-22", "clang++"}) {
    if (!driver.empty())
      break;
    if (auto found = llvm::sys::findProgramByName(name))
      driver = *found;
  }
  if (driver.empty())
    failLink("no C++ compiler driver found to link the shared library (set "
             "MOKA_CXX)");
  std::string openmpDir =
      llvm::sys::path::parent_path(MOKA_OPENMP_LIBRARY).str();
  llvm::SmallVector<std::string> args = {driver,
                                         "-shared",
                                         "-o",
                                         output.str(),
                                         object.str(),
                                         runtime,
                                         "-Wl,--no-undefined",
                                         "-lm"};
  if (!serial) {
    args.push_back(MOKA_OPENMP_LIBRARY);
    args.push_back("-Wl,-rpath," + openmpDir);
  }
  // Instrumented code calls the ASan runtime, which the loading program
  // must have first in its library list (an ASan executable, or
  // LD_PRELOAD); the library records it as a dependency.
  if (instrumentAddresses()) {
    llvm::StringRef asan = MOKA_ASAN_RUNTIME;
    if (asan.empty() || !llvm::sys::fs::exists(asan))
      failLink(
          "--sanitize=address: the AddressSanitizer runtime of clang-22 is "
          "not installed (Debian package libclang-rt-22-dev)");
    args.push_back(asan.str());
    args.push_back("-Wl,-rpath," + llvm::sys::path::parent_path(asan).str());
  }
  llvm::SmallVector<llvm::StringRef> refs(args.begin(), args.end());
  std::string error;
  int rc =
      llvm::sys::ExecuteAndWait(driver, refs, std::nullopt, {}, 0, 0, &error);
  if (rc != 0)
    failLink("linking '" + output + "' with " + driver + " failed" +
             (error.empty() ? "" : ": " + error));
}

/// --target=nvptx: the GPU pipeline; writes the kernels' PTX (one module)
/// or the lowered module.
int compileForGPU(ModuleOp module, MLIRContext &context) {
  PassManager pm(&context);
  if (failed(applyPassManagerCLOptions(pm)))
    fail("bad pass manager options");
  moka::GPUPipelineOptions options;
  options.chip = chip;
  options.features = ptxFeatures();
  options.format = "isa";
  options.optLevel = optLevel;
  std::string problem = moka::checkGPUPipelineOptions(options);
  if (!problem.empty())
    fail(problem);
  moka::buildGPUPipeline(pm, options);
  if (failed(pm.run(module)))
    fail("compilation of '" + inputFilename + "' for " + chip + " failed");
  std::string text;
  if (emit == Emit::MLIR) {
    llvm::raw_string_ostream os(text);
    module.print(os);
  } else if (emit == Emit::LLVM) {
    llvm::LLVMContext llvmContext;
    std::unique_ptr<llvm::Module> llvmModule =
        translateModuleToLLVMIR(module, llvmContext, "moka");
    if (!llvmModule)
      fail("translation of '" + inputFilename + "' to LLVM IR failed");
    llvm::raw_string_ostream os(text);
    llvmModule->print(os, nullptr);
  } else {
    SmallVector<gpu::BinaryOp> binaries(module.getOps<gpu::BinaryOp>());
    if (binaries.empty())
      fail("'" + inputFilename + "' has no parallel work to run on a GPU");
    for (gpu::BinaryOp binary : binaries)
      for (Attribute attr : binary.getObjects())
        text += cast<gpu::ObjectAttr>(attr).getObject().getValue();
  }
  writeFile(outputFilename, text, /*binary=*/false);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM initLLVM(argc, argv);
  registerPassManagerCLOptions();
  registerDefaultTimingManagerCLOptions();
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(argc, argv,
                              "mokac: compile a moka model ahead of time\n");
  if (optLevel > 3)
    fail("optimization level -O" + llvm::Twine(optLevel.getValue()) +
         " is not one of -O0, -O1, -O2, -O3");
  bool gpu = target == TargetKind::NVPTX;
  if (emit == Emit::PTX && !gpu)
    fail("--emit=ptx needs --target=nvptx");
  if (gpu && emit != Emit::PTX && emit != Emit::MLIR && emit != Emit::LLVM)
    fail("--target=nvptx emits ptx, or mlir or llvm (the host code that "
         "launches the kernels, with them embedded); libraries for GPUs are "
         "not available yet");
  if (chip.getNumOccurrences() && !gpu)
    fail("--chip applies to --target=nvptx only");
  if (cpu.getNumOccurrences() && gpu)
    fail("--cpu applies to CPU targets only (--chip chooses the GPU)");
  if (gpu && !llvm::StringRef(chip).starts_with("sm_"))
    fail("--chip=" + chip +
         " is not an NVIDIA architecture (sm_80, sm_90, "
         "...)");
  if (sanitize.getNumOccurrences() && sanitize != "address" &&
      sanitize != "none")
    fail("unknown sanitizer '" + sanitize + "' (address or none)");
  if (gpu && sanitize == "address")
    fail("--sanitize=address applies to CPU targets only");

  MLIRContext context;
  moka::configureToolContext(context);

  std::string errorMessage;
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  OwningOpRef<ModuleOp> module = moka::readModelFile(
      context, sourceMgr, inputFilename, gpu, errorMessage,
      [&](Diagnostic &diag) {
        diagnostics.emitDiagnostic(diag.getLocation(), diag.str(),
                                   diag.getSeverity());
        fail("'" + inputFilename + "' could not be parsed");
      });
  if (!module)
    fail(errorMessage);

  std::string prefix =
      modelName.getNumOccurrences() ? modelName.getValue() : defaultName();
  auto functions = moka::collectCInterface(*module, prefix);
  if (failed(functions))
    fail("'" + inputFilename + "' has no C interface (see above)");

  if (emit == Emit::Header && gpu)
    fail("--emit=header describes a CPU library (--target=host or x86_64)");
  if (emit == Emit::Header) {
    std::string header;
    llvm::raw_string_ostream os(header);
    moka::writeCHeader(os, prefix, llvm::sys::path::filename(inputFilename),
                       *functions);
    writeFile(outputFilename, header, /*binary=*/false);
    return 0;
  }

  if (failed(moka::loadWeights(*module, inputFilename, weightsFile)))
    fail("the weights of '" + inputFilename + "' could not be loaded");

  if (gpu)
    return compileForGPU(*module, context);

  moka::prepareForCInterface(*module, *functions);
  PassManager pm(&context);
  if (failed(applyPassManagerCLOptions(pm)))
    fail("bad pass manager options");
  DefaultTimingManager timing;
  applyDefaultTimingManagerCLOptions(timing);
  TimingScope rootTiming = timing.getRootScope();
  pm.enableTiming(rootTiming);
  moka::CPUPipelineOptions options;
  options.parallel = !serial;
  options.reportChecks = true;
  moka::buildCPUPipeline(pm, options);
  if (failed(pm.run(*module)))
    fail("compilation of '" + inputFilename + "' failed");
  if (failed(moka::addCInterface(*module, prefix, *functions)))
    fail("cannot generate the C interface of '" + inputFilename + "'");

  if (emit == Emit::MLIR) {
    std::string text;
    llvm::raw_string_ostream os(text);
    module->print(os);
    writeFile(outputFilename, text, /*binary=*/false);
    return 0;
  }

  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  std::unique_ptr<llvm::TargetMachine> tm = createTargetMachine();
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(*module, llvmContext, prefix);
  if (!llvmModule)
    fail("translation of '" + inputFilename + "' to LLVM IR failed");
  llvmModule->setSourceFileName(prefix);
  llvmModule->setTargetTriple(tm->getTargetTriple());
  llvmModule->setDataLayout(tm->createDataLayout());
  auto optimize = makeOptimizingTransformer(optLevel, 0, tm.get());
  if (llvm::Error err = optimize(llvmModule.get()))
    fail("LLVM optimization failed: " + llvm::toString(std::move(err)));
  if (instrumentAddresses())
    moka::instrumentWithAddressSanitizer(*llvmModule, tm.get());

  if (emit == Emit::LLVM) {
    std::string text;
    llvm::raw_string_ostream os(text);
    llvmModule->print(os, nullptr);
    writeFile(outputFilename, text, /*binary=*/false);
    return 0;
  }

  llvm::SmallVector<char, 0> object;
  {
    llvm::raw_svector_ostream os(object);
    llvm::legacy::PassManager codegen;
    if (tm->addPassesToEmitFile(codegen, os, nullptr,
                                llvm::CodeGenFileType::ObjectFile))
      fail("the target cannot emit object files");
    codegen.run(*llvmModule);
  }
  llvm::StringRef objectData(object.data(), object.size());

  switch (emit) {
  case Emit::Obj:
    writeFile(outputFilename, objectData, /*binary=*/true);
    break;
  case Emit::StaticLib: {
    std::string memberName = prefix + ".o";
    llvm::NewArchiveMember members[] = {
        llvm::NewArchiveMember(llvm::MemoryBufferRef(objectData, memberName))};
    if (llvm::Error err = llvm::writeArchive(
            outputFilename, members, llvm::SymtabWritingMode::NormalSymtab,
            llvm::object::Archive::K_GNU, /*Deterministic=*/true,
            /*Thin=*/false))
      fail("cannot write '" + outputFilename +
           "': " + llvm::toString(std::move(err)));
    break;
  }
  case Emit::SharedLib: {
    llvm::SmallString<128> temp;
    int fd;
    if (std::error_code ec =
            llvm::sys::fs::createTemporaryFile("mokac", "o", fd, temp))
      fail("cannot create a temporary file: " + ec.message());
    llvm::FileRemover remover(temp);
    {
      llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
      os << objectData;
    }
    linkSharedLibrary(argv[0], temp, outputFilename);
    break;
  }
  default:
    break;
  }
  return 0;
}
