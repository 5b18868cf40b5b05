//===- CInterface.cpp - The C ABI of compiled models ----------------------===//
//
// Generates the C entry points, the manifest and the header of a model
// library (see moka/Target/CInterface.h and moka/moka.h).
//
//===----------------------------------------------------------------------===//

#include "moka/Target/CInterface.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

namespace {

constexpr int64_t kMaxRank = 8; // MOKA_MAX_RANK

std::optional<StringRef> dtypeName(Type type) {
  if (type.isF32())
    return StringRef("f32");
  if (type.isF64())
    return StringRef("f64");
  if (type.isF16())
    return StringRef("f16");
  if (type.isBF16())
    return StringRef("bf16");
  if (type.isSignlessInteger(1))
    return StringRef("i1");
  if (type.isSignlessInteger(8))
    return StringRef("i8");
  if (type.isSignlessInteger(32))
    return StringRef("i32");
  if (type.isSignlessInteger(64))
    return StringRef("i64");
  return std::nullopt;
}

StringRef cDTypeName(Type type) {
  StringRef name = *dtypeName(type);
  return llvm::StringSwitch<StringRef>(name)
      .Case("f32", "MOKA_DTYPE_F32")
      .Case("f64", "MOKA_DTYPE_F64")
      .Case("f16", "MOKA_DTYPE_F16")
      .Case("bf16", "MOKA_DTYPE_BF16")
      .Case("i1", "MOKA_DTYPE_BOOL")
      .Case("i8", "MOKA_DTYPE_I8")
      .Case("i32", "MOKA_DTYPE_I32")
      .Default("MOKA_DTYPE_I64");
}

std::string tensorString(RankedTensorType type) {
  std::string s = dtypeName(type.getElementType())->str() + "[";
  for (auto [i, d] : llvm::enumerate(type.getShape())) {
    if (i)
      s += "x";
    s += ShapedType::isDynamic(d) ? std::string("?") : std::to_string(d);
  }
  return s + "]";
}

bool isCIdentifier(StringRef s) {
  if (s.empty() || !(llvm::isAlpha(s[0]) || s[0] == '_'))
    return false;
  return llvm::all_of(s, [](char c) { return llvm::isAlnum(c) || c == '_'; });
}

LLVM::GlobalOp createString(OpBuilder &b, Location loc, StringRef name,
                            StringRef text) {
  std::string data = text.str();
  data.push_back('\0');
  auto type = LLVM::LLVMArrayType::get(IntegerType::get(b.getContext(), 8),
                                       data.size());
  return LLVM::GlobalOp::create(b, loc, type, /*isConstant=*/true,
                                LLVM::Linkage::Private, name,
                                b.getStringAttr(data));
}

} // namespace

std::string moka::CFunction::signature() const {
  std::string s = name + "(";
  for (auto [i, t] : llvm::enumerate(inputs))
    s += (i ? "," : "") + tensorString(t);
  s += ")->(";
  for (auto [i, t] : llvm::enumerate(results))
    s += (i ? "," : "") + tensorString(t);
  return s + ")";
}

FailureOr<SmallVector<moka::CFunction>>
moka::collectCInterface(ModuleOp module, StringRef prefix) {
  if (!isCIdentifier(prefix))
    return module.emitError()
           << "model name '" << prefix
           << "' is not a C identifier (letters, digits and '_', not "
              "starting with a digit); set it with --name";
  SmallVector<CFunction> functions;
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isPrivate() || func.isExternal())
      continue;
    CFunction fn;
    fn.name = func.getSymName().str();
    if (!isCIdentifier(fn.name))
      return func.emitError()
             << "public function name '" << fn.name
             << "' is not a C identifier; make it private or rename it";
    fn.cName = (prefix + "_" + fn.name).str();
    if (fn.name == "moka_manifest")
      return func.emitError()
             << "public function name 'moka_manifest' is reserved: the "
                "library's manifest is "
             << prefix << "_moka_manifest";
    // The runtime's C API lives in the same library.
    static constexpr llvm::StringLiteral kRuntimeSymbols[] = {
        "moka_last_error", "moka_tensor_release", "moka_dtype_size",
        "moka_tensor_num_elements", "moka_tensor_view"};
    if (llvm::is_contained(kRuntimeSymbols, fn.cName))
      return func.emitError()
             << "the C symbol of public function @" << fn.name << ", "
             << fn.cName << ", is a function of the moka runtime; rename "
             << "the function or choose another --name";
    auto check = [&](Type type, StringRef what,
                     size_t index) -> FailureOr<RankedTensorType> {
      auto tensor = dyn_cast<RankedTensorType>(type);
      if (!tensor || !dtypeName(tensor.getElementType()) ||
          tensor.getRank() > kMaxRank)
        return func.emitError()
               << what << " #" << index << " of public function @" << fn.name
               << " has type " << type
               << "; the C interface passes ranked tensors (rank <= "
               << kMaxRank << ") of f32, f64, f16, bf16, i1, i8, i32 or i64";
      return tensor;
    };
    for (auto [i, type] : llvm::enumerate(func.getArgumentTypes())) {
      FailureOr<RankedTensorType> t = check(type, "argument", i);
      if (failed(t))
        return failure();
      fn.inputs.push_back(*t);
    }
    for (auto [i, type] : llvm::enumerate(func.getResultTypes())) {
      FailureOr<RankedTensorType> t = check(type, "result", i);
      if (failed(t))
        return failure();
      fn.results.push_back(*t);
    }
    functions.push_back(std::move(fn));
  }
  if (functions.empty())
    return module.emitError()
           << "the module has no public function with a body to export";
  return functions;
}

void moka::prepareForCInterface(ModuleOp module,
                                ArrayRef<CFunction> functions) {
  for (const CFunction &fn : functions)
    if (auto func = module.lookupSymbol<func::FuncOp>(fn.name))
      func->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(),
                    UnitAttr::get(module.getContext()));
}

LogicalResult moka::addCInterface(ModuleOp module, StringRef prefix,
                                  ArrayRef<CFunction> functions) {
  MLIRContext *ctx = module.getContext();
  Location loc = module.getLoc();
  SymbolTable symbols(module);

  // Only the entry points below are visible outside the library.
  for (auto func : module.getOps<LLVM::LLVMFuncOp>())
    if (!func.isExternal())
      func.setLinkage(LLVM::Linkage::Internal);
  for (auto global : module.getOps<LLVM::GlobalOp>())
    if (global.getLinkage() == LLVM::Linkage::External &&
        !global.getInitializerRegion().empty())
      global.setLinkage(LLVM::Linkage::Internal);
  for (auto global : module.getOps<LLVM::GlobalOp>())
    if (global.getLinkage() == LLVM::Linkage::External && global.getValueAttr())
      global.setLinkage(LLVM::Linkage::Internal);

  // Generated code allocates through the runtime's caching allocator (whose
  // blocks results hand over to the caller) and copies with its memref copy.
  for (auto [from, to] :
       {std::pair<StringRef, StringRef>{"malloc", "mokaAllocOrFail"},
        {"free", "mokaFree"},
        {"memrefCopy", "mokaMemRefCopy"}}) {
    if (Operation *op = symbols.lookup(from))
      if (failed(symbols.rename(op, to)))
        return module.emitError() << "cannot rename @" << from;
  }

  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto i32 = IntegerType::get(ctx, 32);
  auto i64 = IntegerType::get(ctx, 64);
  auto voidType = LLVM::LLVMVoidType::get(ctx);
  OpBuilder b = OpBuilder::atBlockEnd(module.getBody());

  auto invoke = LLVM::LLVMFuncOp::create(
      b, loc, "mokaInvoke", LLVM::LLVMFunctionType::get(i32, {ptr, ptr, ptr}));

  std::string manifest;
  for (const CFunction &fn : functions) {
    auto ciface = symbols.lookup<LLVM::LLVMFuncOp>("_mlir_ciface_" + fn.name);
    size_t numPacked = (fn.results.empty() ? 0 : 1) + fn.inputs.size();
    if (!ciface || ciface.getNumArguments() != numPacked)
      return module.emitError()
             << "the lowering produced no C-compatible entry for @" << fn.name;

    // void __moka_packed_f(void **argv): unpack and call the ciface entry.
    auto packed = LLVM::LLVMFuncOp::create(
        b, loc, "__moka_packed_" + fn.name,
        LLVM::LLVMFunctionType::get(voidType, {ptr}), LLVM::Linkage::Internal);
    {
      OpBuilder::InsertionGuard guard(b);
      Block *block = packed.addEntryBlock(b);
      b.setInsertionPointToStart(block);
      SmallVector<Value> args;
      for (size_t i = 0; i < numPacked; ++i) {
        Value slot =
            LLVM::GEPOp::create(b, loc, ptr, ptr, block->getArgument(0),
                                ArrayRef<LLVM::GEPArg>{int32_t(i)});
        args.push_back(LLVM::LoadOp::create(b, loc, ptr, slot));
      }
      LLVM::CallOp::create(b, loc, ciface, args);
      LLVM::ReturnOp::create(b, loc, ValueRange{});
    }

    std::string signature = fn.signature();
    manifest += fn.cName + " " + signature + "\n";
    LLVM::GlobalOp sigGlobal =
        createString(b, loc, "__moka_signature_" + fn.name, signature);

    // moka_status PREFIX_f(tensors...): store the pointers and invoke.
    size_t numTensors = fn.inputs.size() + fn.results.size();
    auto entry = LLVM::LLVMFuncOp::create(
        b, loc, fn.cName,
        LLVM::LLVMFunctionType::get(i32, SmallVector<Type>(numTensors, ptr)));
    if (symbols.lookup(fn.cName))
      return module.emitError() << "symbol @" << fn.cName
                                << " of the C interface is already defined";
    {
      OpBuilder::InsertionGuard guard(b);
      Block *block = entry.addEntryBlock(b);
      b.setInsertionPointToStart(block);
      Value count = LLVM::ConstantOp::create(
          b, loc, i64, b.getI64IntegerAttr(std::max<size_t>(numTensors, 1)));
      Value argv = LLVM::AllocaOp::create(b, loc, ptr, ptr, count, 8);
      for (size_t i = 0; i < numTensors; ++i) {
        Value slot = LLVM::GEPOp::create(b, loc, ptr, ptr, argv,
                                         ArrayRef<LLVM::GEPArg>{int32_t(i)});
        LLVM::StoreOp::create(b, loc, block->getArgument(i), slot);
      }
      Value sig = LLVM::AddressOfOp::create(b, loc, sigGlobal);
      Value fnPtr = LLVM::AddressOfOp::create(b, loc, packed);
      auto call =
          LLVM::CallOp::create(b, loc, invoke, ValueRange{sig, argv, fnPtr});
      LLVM::ReturnOp::create(b, loc, call.getResult());
    }
  }

  // const char *PREFIX_moka_manifest(void).
  LLVM::GlobalOp manifestGlobal =
      createString(b, loc, "__moka_manifest", manifest);
  auto manifestFn =
      LLVM::LLVMFuncOp::create(b, loc, (prefix + "_moka_manifest").str(),
                               LLVM::LLVMFunctionType::get(ptr, {}));
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(manifestFn.addEntryBlock(b));
    Value address = LLVM::AddressOfOp::create(b, loc, manifestGlobal);
    LLVM::ReturnOp::create(b, loc, address);
  }
  return success();
}

void moka::writeCHeader(llvm::raw_ostream &os, StringRef prefix,
                        StringRef source, ArrayRef<CFunction> functions) {
  std::string guard = "MOKA_MODEL_" + StringRef(prefix).upper() + "_H";
  os << "/* The C interface of the moka model '" << prefix << "', compiled "
     << "from " << source << " by mokac.\n"
     << " *\n"
     << " * Each function validates its arguments and returns MOKA_OK or an\n"
     << " * error status with moka_last_error(); results are allocated by the\n"
     << " * runtime: release them with moka_tensor_release(). Dimensions "
        "shown\n"
     << " * as '?' are chosen by the caller; moka.h has the details. */\n\n"
     << "#ifndef " << guard << "\n#define " << guard << "\n\n"
     << "#include \"moka/moka.h\"\n\n"
     << "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n";
  for (const CFunction &fn : functions) {
    os << "/* @" << fn.name << "\n";
    auto describe = [&](StringRef name, size_t i, RankedTensorType t) {
      os << " *   " << name << i << ": " << cDTypeName(t.getElementType())
         << ", rank " << t.getRank() << ", shape [";
      for (auto [d, size] : llvm::enumerate(t.getShape())) {
        if (d)
          os << ", ";
        if (ShapedType::isDynamic(size))
          os << "?";
        else
          os << size;
      }
      os << "]\n";
    };
    for (auto [i, t] : llvm::enumerate(fn.inputs))
      describe("arg", i, t);
    for (auto [i, t] : llvm::enumerate(fn.results))
      describe("result", i, t);
    os << " */\nMOKA_EXPORT moka_status " << fn.cName << "(";
    bool first = true;
    for (size_t i = 0; i < fn.inputs.size(); ++i, first = false)
      os << (first ? "" : ", ") << "const moka_tensor *arg" << i;
    for (size_t i = 0; i < fn.results.size(); ++i, first = false)
      os << (first ? "" : ", ") << "moka_tensor *result" << i;
    if (first)
      os << "void";
    os << ");\n\n";
  }
  os << "/* The signature of every function above, one per line:\n"
     << " * \"C_NAME NAME(ARG_TYPES)->(RESULT_TYPES)\". */\n"
     << "MOKA_EXPORT const char *" << prefix << "_moka_manifest(void);\n\n"
     << "#ifdef __cplusplus\n}\n#endif\n\n#endif /* " << guard << " */\n";
}
