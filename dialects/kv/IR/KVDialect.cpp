//===- KVDialect.cpp - The `kv` dialect -----------------------------------===//
//
// Registers the `kv` dialect; the cache type's syntax, verifier and storage.
//
//===----------------------------------------------------------------------===//

#include "moka/Dialect/KV/IR/KVDialect.h"
#include "moka/Dialect/KV/IR/KVOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace moka::kv;

#include "moka/Dialect/KV/IR/KVOpsDialect.cpp.inc"

#define GET_TYPEDEF_CLASSES
#include "moka/Dialect/KV/IR/KVOpsTypes.cpp.inc"

void KVDialect::initialize() {
  addTypes<
#define GET_TYPEDEF_LIST
#include "moka/Dialect/KV/IR/KVOpsTypes.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "moka/Dialect/KV/IR/KVOps.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// CacheType
//===----------------------------------------------------------------------===//

Type CacheType::parse(AsmParser &parser) {
  SmallVector<int64_t> shape;
  Type format;
  if (parser.parseLess() ||
      parser.parseDimensionList(shape, /*allowDynamic=*/false,
                                /*withTrailingX=*/false) ||
      parser.parseComma() || parser.parseType(format))
    return {};
  int64_t keyGroup = 0, valueGroup = 0, window = 0, rank = 0;
  while (succeeded(parser.parseOptionalComma())) {
    StringRef key;
    SMLoc loc = parser.getCurrentLocation();
    int64_t value;
    if (parser.parseKeyword(&key) || parser.parseEqual() ||
        parser.parseInteger(value))
      return {};
    int64_t *slot = llvm::StringSwitch<int64_t *>(key)
                        .Case("key_group", &keyGroup)
                        .Case("value_group", &valueGroup)
                        .Case("window", &window)
                        .Case("rank", &rank)
                        .Default(nullptr);
    if (!slot) {
      parser.emitError(loc) << "unknown cache parameter '" << key
                            << "' (key_group, value_group, window, rank)";
      return {};
    }
    if (value <= 0) {
      // Zero would read as "absent" (a float cache's defaults).
      parser.emitError(loc) << key << " must be positive, got " << value;
      return {};
    }
    *slot = value;
  }
  if (parser.parseGreater())
    return {};
  return parser.getChecked<CacheType>(parser.getContext(), shape, format,
                                      keyGroup, valueGroup, window, rank);
}

void CacheType::print(AsmPrinter &printer) const {
  printer << "<";
  llvm::interleave(getShape(), printer.getStream(), "x");
  printer << ", " << getFormat();
  if (isQuantized())
    printer << ", key_group = " << getKeyGroup()
            << ", value_group = " << getValueGroup()
            << ", window = " << getWindow();
  if (getRank())
    printer << ", rank = " << getRank();
  printer << ">";
}

unsigned CacheType::getBits() const {
  if (auto integer = dyn_cast<IntegerType>(getFormat()))
    return integer.getWidth();
  return 0;
}

LogicalResult CacheType::verify(function_ref<InFlightDiagnostic()> emitError,
                                ArrayRef<int64_t> shape, Type format,
                                int64_t keyGroup, int64_t valueGroup,
                                int64_t window, int64_t rank) {
  if (shape.size() != 4)
    return emitError() << "cache shape must be B x H x S x D (4 sizes), got "
                       << shape.size();
  if (llvm::any_of(shape, [](int64_t s) { return s <= 0; }))
    return emitError() << "cache sizes must be positive";
  int64_t capacity = shape[2], headSize = shape[3];
  auto integer = dyn_cast<IntegerType>(format);
  bool quantized = integer != nullptr;
  if (quantized) {
    unsigned bits = integer.getWidth();
    if (!integer.isSignless() || (bits != 8 && bits != 4 && bits != 2))
      return emitError() << "unsupported bit width " << format
                         << " of a quantized cache (i8, i4 or i2)";
  } else if (!format.isF32() && !format.isF16() && !format.isBF16()) {
    return emitError() << "unsupported cache format " << format
                       << " (f32, f16, bf16, i8, i4 or i2)";
  }
  if (rank < 0)
    return emitError() << "rank must be positive, got " << rank;
  if (rank && quantized)
    return emitError() << "a low-rank latent cache stores f32, f16 or bf16, "
                          "not "
                       << format;
  if (!quantized) {
    if (keyGroup || valueGroup || window)
      return emitError() << "key_group, value_group and window apply to "
                            "quantized caches only (format "
                         << format << ")";
    return success();
  }
  if (keyGroup <= 0 || valueGroup <= 0 || window <= 0)
    return emitError() << "a quantized cache needs positive key_group, "
                          "value_group and window";
  if (headSize % valueGroup != 0)
    return emitError() << "head size D = " << headSize
                       << " is not divisible by the value group G_c = "
                       << valueGroup;
  if (capacity % keyGroup != 0)
    return emitError() << "capacity S = " << capacity
                       << " is not divisible by the key group G_t = "
                       << keyGroup;
  if (window > capacity)
    return emitError() << "window R = " << window
                       << " is larger than the capacity S = " << capacity;
  if (window < keyGroup || window % keyGroup != 0)
    return emitError() << "window R = " << window
                       << " must be a positive multiple of the key group G_t = "
                       << keyGroup;
  if ((headSize * integer.getWidth()) % 8 != 0)
    return emitError() << "head size D = " << headSize << " of " << format
                       << " codes does not fill whole bytes";
  return success();
}

SmallVector<RankedTensorType> CacheType::getStorageTypes() const {
  MLIRContext *ctx = getContext();
  int64_t b = getBatch(), h = getHeads(), s = getCapacity(), d = getHeadSize();
  auto f32 = Float32Type::get(ctx);
  auto i8 = IntegerType::get(ctx, 8);
  auto length = RankedTensorType::get({}, IntegerType::get(ctx, 64));
  if (isLatent())
    return {RankedTensorType::get({b, s, getRank()}, getFormat()), length};
  if (!isQuantized()) {
    auto kv = RankedTensorType::get({b, h, s, d}, getFormat());
    return {kv, kv, length};
  }
  int64_t packed = d * getBits() / 8;
  auto codes = RankedTensorType::get({b, h, s, packed}, i8);
  auto keyStats = RankedTensorType::get({b, h, s / getKeyGroup(), d}, f32);
  auto valueStats = RankedTensorType::get({b, h, s, d / getValueGroup()}, f32);
  auto window = RankedTensorType::get({b, h, getWindow(), d}, f32);
  return {codes,      keyStats, keyStats, codes, valueStats,
          valueStats, window,   window,   length};
}
