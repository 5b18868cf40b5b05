//===- Weights.cpp - Model weights from safetensors files -----------------===//
//
// Reads the safetensors format (an 8-byte little-endian header size, a JSON
// header {name: {dtype, shape, data_offsets}}, then the raw data) into the
// blobs of dense_resource constants.
//
//===----------------------------------------------------------------------===//

#include "moka/Target/Weights.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

using namespace mlir;

namespace {

struct TensorEntry {
  std::string dtype;
  SmallVector<int64_t> shape;
  ArrayRef<char> data;
};

size_t dtypeBytes(StringRef dtype) {
  return llvm::StringSwitch<size_t>(dtype)
      .Cases({"F64", "I64", "U64"}, 8)
      .Cases({"F32", "I32", "U32"}, 4)
      .Cases({"F16", "BF16", "I16", "U16"}, 2)
      .Cases({"I8", "U8", "BOOL"}, 1)
      .Default(0);
}

/// The safetensors dtypes that hold elements of `type`.
SmallVector<StringRef> dtypesFor(Type type) {
  if (type.isF64())
    return {"F64"};
  if (type.isF32())
    return {"F32"};
  if (type.isF16())
    return {"F16"};
  if (type.isBF16())
    return {"BF16"};
  if (type.isInteger(64))
    return {"I64", "U64"};
  if (type.isInteger(32))
    return {"I32", "U32"};
  if (type.isInteger(16))
    return {"I16", "U16"};
  if (type.isInteger(8))
    return {"I8", "U8"};
  return {};
}

/// The first key that occurs twice in the top-level object of `json`, if
/// any: a JSON parser keeps only one of them, and which tensor a file means
/// would be a guess.
std::optional<StringRef> duplicateTopLevelKey(StringRef json) {
  llvm::StringSet<> keys;
  int depth = 0;
  for (size_t i = 0; i < json.size(); ++i) {
    char c = json[i];
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == '"') {
      size_t begin = ++i;
      while (i < json.size() && json[i] != '"')
        i += json[i] == '\\' ? 2 : 1;
      if (i >= json.size())
        return std::nullopt; // Malformed: the JSON parser reports it.
      StringRef text = json.slice(begin, i);
      size_t next = json.find_first_not_of(" \t\r\n", i + 1);
      bool isKey = next != StringRef::npos && json[next] == ':';
      if (depth == 1 && isKey && !keys.insert(text).second)
        return text;
    }
  }
  return std::nullopt;
}

LogicalResult parseSafetensors(ModuleOp module, StringRef path,
                               const llvm::MemoryBuffer &buffer,
                               llvm::StringMap<TensorEntry> &entries) {
  StringRef bytes = buffer.getBuffer();
  auto bad = [&](const Twine &why) {
    return module.emitError() << "weights file '" << path
                              << "' is not a valid safetensors file: " << why;
  };
  if (bytes.size() < 8)
    return bad("shorter than its 8-byte header size");
  uint64_t headerSize = llvm::support::endian::read64le(bytes.data());
  if (headerSize > bytes.size() - 8)
    return bad("header size " + Twine(headerSize) + " exceeds the file");
  StringRef header = bytes.substr(8, headerSize);
  StringRef data = bytes.substr(8 + headerSize);
  llvm::Expected<llvm::json::Value> json = llvm::json::parse(header);
  if (!json)
    return bad("header is not JSON (" + llvm::toString(json.takeError()) + ")");
  const llvm::json::Object *object = json->getAsObject();
  if (!object)
    return bad("header is not a JSON object");
  if (std::optional<StringRef> key = duplicateTopLevelKey(header))
    return bad("entry '" + *key + "' occurs more than once");
  for (const auto &[key, value] : *object) {
    if (key == "__metadata__")
      continue;
    const llvm::json::Object *info = value.getAsObject();
    if (!info)
      return bad("entry '" + key.str() + "' is not an object");
    std::optional<StringRef> dtype = info->getString("dtype");
    const llvm::json::Array *shape = info->getArray("shape");
    const llvm::json::Array *offsets = info->getArray("data_offsets");
    if (!dtype || !shape || !offsets || offsets->size() != 2)
      return bad("entry '" + key.str() +
                 "' lacks dtype, shape or data_offsets");
    TensorEntry entry;
    entry.dtype = dtype->str();
    size_t eltBytes = dtypeBytes(*dtype);
    if (!eltBytes)
      return bad("entry '" + key.str() + "' has unsupported dtype '" + *dtype +
                 "'");
    uint64_t count = 1;
    for (const llvm::json::Value &dim : *shape) {
      std::optional<int64_t> d = dim.getAsInteger();
      if (!d || *d < 0 || (*d && count > (UINT64_MAX / 16) / uint64_t(*d)))
        return bad("entry '" + key.str() + "' has an invalid shape");
      entry.shape.push_back(*d);
      count *= *d;
    }
    std::optional<int64_t> begin = (*offsets)[0].getAsInteger();
    std::optional<int64_t> end = (*offsets)[1].getAsInteger();
    if (!begin || !end || *begin < 0 || *end < *begin ||
        uint64_t(*end) > data.size())
      return bad("entry '" + key.str() + "' has data_offsets outside the " +
                 "file (truncated?)");
    if (uint64_t(*end - *begin) != count * eltBytes)
      return bad("entry '" + key.str() + "' holds " + Twine(*end - *begin) +
                 " bytes but its dtype and shape need " +
                 Twine(count * eltBytes));
    entry.data = ArrayRef<char>(data.data() + *begin, *end - *begin);
    entries[key] = std::move(entry);
  }
  return success();
}

std::string shapeString(ArrayRef<int64_t> shape) {
  std::string s = "[";
  for (auto [i, d] : llvm::enumerate(shape))
    s += (i ? ", " : "") + std::to_string(d);
  return s + "]";
}

} // namespace

LogicalResult moka::loadWeights(ModuleOp module, StringRef modulePath,
                                StringRef weightsPath) {
  // The constants without data, by resource key.
  llvm::MapVector<StringRef, std::pair<DenseResourceElementsAttr, Location>>
      missing;
  module.walk([&](Operation *op) {
    op->getAttrDictionary().walk([&](DenseResourceElementsAttr attr) {
      DenseResourceElementsHandle handle = attr.getRawHandle();
      if (!handle.getBlob())
        missing.insert({handle.getKey(), {attr, op->getLoc()}});
    });
  });

  std::string path = weightsPath.str();
  if (path.empty()) {
    auto attr = module->getAttrOfType<StringAttr>(kWeightsAttrName);
    if (!attr) {
      if (missing.empty())
        return success();
      return emitError(missing.front().second.second)
             << "the data of weight '" << missing.front().first
             << "' is neither in the module nor in a weights file (no '"
             << kWeightsAttrName << "' attribute and no weights file given)";
    }
    SmallString<256> resolved(llvm::sys::path::parent_path(modulePath));
    if (llvm::sys::path::is_absolute(attr.getValue()))
      resolved = attr.getValue();
    else
      llvm::sys::path::append(resolved, attr.getValue());
    path = std::string(resolved);
  }
  // A weights file named on the command line is read and checked even when
  // the module needs none: a wrong path is a mistake worth reporting.
  if (missing.empty() && weightsPath.empty())
    return success();

  if (llvm::sys::fs::exists(path) && !llvm::sys::fs::is_regular_file(path))
    return module.emitError()
           << "cannot read weights file '" << path << "': not a regular file";
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer)
    return module.emitError() << "cannot read weights file '" << path
                              << "': " << buffer.getError().message();
  llvm::StringMap<TensorEntry> entries;
  if (failed(parseSafetensors(module, path, **buffer, entries)))
    return failure();

  for (auto &[key, use] : missing) {
    auto [attr, loc] = use;
    auto it = entries.find(key);
    if (it == entries.end())
      return emitError(loc)
             << "weight '" << key << "' is not in '" << path << "'";
    const TensorEntry &entry = it->second;
    ShapedType type = attr.getType();
    SmallVector<StringRef> dtypes = dtypesFor(type.getElementType());
    if (dtypes.empty())
      return emitError(loc)
             << "weight '" << key << "' has element type "
             << type.getElementType() << ", which weights files cannot hold";
    if (!llvm::is_contained(dtypes, entry.dtype) ||
        ArrayRef<int64_t>(entry.shape) != type.getShape())
      return emitError(loc) << "weight '" << key << "' in '" << path << "' is "
                            << entry.dtype << " " << shapeString(entry.shape)
                            << " but the module uses it as " << type;
    size_t align = std::max<size_t>(
        64, llvm::divideCeil(type.getElementTypeBitWidth(), 8));
    attr.getRawHandle().getResource()->setBlob(
        HeapAsmResourceBlob::allocateAndCopyWithAlign(entry.data, align));
  }
  return success();
}
