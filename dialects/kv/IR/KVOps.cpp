//===- KVOps.cpp - Operations of the `kv` dialect -------------------------===//
//
// Verifiers of the `kv` operations.
//
//===----------------------------------------------------------------------===//

#include "moka/Dialect/KV/IR/KVOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

#include <cmath>

using namespace mlir;
using namespace moka::kv;

namespace {

std::string shapeString(ArrayRef<int64_t> shape) {
  std::string s;
  for (auto [i, d] : llvm::enumerate(shape))
    s += (i ? "x" : "") +
         (ShapedType::isDynamic(d) ? std::string("?") : std::to_string(d));
  return s;
}

/// Checks `type` against `expected` sizes (-1: any size).
LogicalResult checkShape(Operation *op, StringRef what, RankedTensorType type,
                         ArrayRef<int64_t> expected) {
  bool ok = type.getRank() == static_cast<int64_t>(expected.size());
  for (size_t i = 0; ok && i < expected.size(); ++i)
    ok = expected[i] < 0 || type.isDynamicDim(i) ||
         type.getDimSize(i) == expected[i];
  if (!ok) {
    SmallVector<int64_t> shown(expected);
    for (int64_t &d : shown)
      if (d < 0)
        d = ShapedType::kDynamic;
    return op->emitOpError()
           << what << " must be " << shapeString(shown) << ", got " << type;
  }
  return success();
}

} // namespace

#define GET_OP_CLASSES
#include "moka/Dialect/KV/IR/KVOps.cpp.inc"

LogicalResult AppendOp::verify() {
  auto cache = cast<CacheType>(getCache().getType());
  int64_t b = cache.getBatch(), h = cache.getHeads(), d = cache.getHeadSize();
  auto keys = cast<RankedTensorType>(getKeys().getType());
  if (cache.isLatent()) {
    if (getValues())
      return emitOpError("a latent cache appends one tensor c[B, T, r], not "
                         "keys and values");
    return checkShape(*this, "the latent", keys, {b, -1, cache.getRank()});
  }
  if (!getValues())
    return emitOpError("appending to a key/value cache needs keys and values");
  auto values = cast<RankedTensorType>(getValues().getType());
  if (failed(checkShape(*this, "keys", keys, {b, h, -1, d})) ||
      failed(checkShape(*this, "values", values, {b, h, -1, d})))
    return failure();
  if (!keys.isDynamicDim(2) && !values.isDynamicDim(2) &&
      keys.getDimSize(2) != values.getDimSize(2))
    return emitOpError() << "keys and values hold different token counts ("
                         << keys.getDimSize(2) << " vs " << values.getDimSize(2)
                         << ")";
  if (keys.getElementType() != values.getElementType())
    return emitOpError("keys and values must have the same element type");
  return success();
}

double DecodeAttentionOp::getEffectiveScale() {
  if (std::optional<APFloat> s = getScale())
    return s->convertToDouble();
  return 1.0 /
         std::sqrt(double(cast<CacheType>(getCache().getType()).getHeadSize()));
}

LogicalResult DecodeAttentionOp::verify() {
  auto cache = cast<CacheType>(getCache().getType());
  auto query = cast<RankedTensorType>(getQuery().getType());
  auto result = cast<RankedTensorType>(getResult().getType());
  int64_t b = cache.getBatch(), h = cache.getHeads(), d = cache.getHeadSize();
  if (std::optional<APFloat> s = getScale())
    if (!(s->convertToDouble() > 0) || !std::isfinite(s->convertToDouble()))
      return emitOpError("scale must be positive and finite");
  if (query.getRank() != 3)
    return emitOpError() << "query must be B x H_q x D, got " << query;
  if (!query.hasStaticShape())
    return emitOpError() << "query must have a static shape, got " << query;
  if (static_cast<bool>(getUpKeys()) != static_cast<bool>(getUpValues()))
    return emitOpError("up-projections come in pairs: keys and values");
  if (query != result)
    return emitOpError() << "result type " << result
                         << " must equal the query type " << query;
  bool up = static_cast<bool>(getUpKeys());
  if (up && !cache.isLatent())
    return emitOpError("up-projections apply to latent caches only");
  if (cache.isLatent() && up) {
    int64_t r = cache.getRank();
    auto upK = cast<RankedTensorType>(getUpKeys().getType());
    auto upV = cast<RankedTensorType>(getUpValues().getType());
    if (failed(checkShape(*this, "up-projection of keys", upK, {r, h, d})) ||
        failed(checkShape(*this, "up-projection of values", upV, {r, h, d})))
      return failure();
    return checkShape(*this, "query", query, {b, h, d});
  }
  int64_t width = cache.isLatent() ? cache.getRank() : d;
  if (failed(checkShape(*this, "query", query, {b, -1, width})))
    return failure();
  if (cache.isLatent())
    return success();
  int64_t hq = query.getDimSize(1);
  if (hq % h != 0)
    return emitOpError() << "query heads H_q = " << hq
                         << " are not a multiple of the key/value heads "
                            "H_kv = "
                         << h;
  return success();
}

double PrefillAttentionOp::getEffectiveScale() {
  if (std::optional<APFloat> s = getScale())
    return s->convertToDouble();
  auto q = cast<RankedTensorType>(getQuery().getType());
  return 1.0 / std::sqrt(double(q.getDimSize(3)));
}

LogicalResult PrefillAttentionOp::verify() {
  auto q = cast<RankedTensorType>(getQuery().getType());
  auto k = cast<RankedTensorType>(getKeys().getType());
  auto v = cast<RankedTensorType>(getValues().getType());
  if (q.getRank() != 4 || k.getRank() != 4 || v.getRank() != 4)
    return emitOpError("query, keys and values must be B x H x T x D");
  if (q != getResult().getType())
    return emitOpError() << "result type " << getResult().getType()
                         << " must equal the query type " << q;
  if (k != v)
    return emitOpError() << "keys " << k << " and values " << v
                         << " must have the same type";
  // Batch, heads and head size are static (the lowering reshapes heads
  // into groups); the token count may be dynamic.
  for (int64_t d : {0, 1, 3})
    if (q.isDynamicDim(d) || k.isDynamicDim(d))
      return emitOpError("batch, head and head-size dimensions must be "
                         "static");
  if (q.getDimSize(0) != k.getDimSize(0) || q.getDimSize(3) != k.getDimSize(3))
    return emitOpError() << "query " << q << " and keys " << k
                         << " differ in batch or head size";
  if (!q.isDynamicDim(2) && !k.isDynamicDim(2) &&
      q.getDimSize(2) != k.getDimSize(2))
    return emitOpError() << "query and keys hold different token counts ("
                         << q.getDimSize(2) << " vs " << k.getDimSize(2) << ")";
  if (q.getDimSize(1) % k.getDimSize(1) != 0)
    return emitOpError() << "query heads H_q = " << q.getDimSize(1)
                         << " are not a multiple of the key/value heads "
                            "H_kv = "
                         << k.getDimSize(1);
  if (std::optional<APFloat> s = getScale())
    if (!(s->convertToDouble() > 0) || !std::isfinite(s->convertToDouble()))
      return emitOpError("scale must be positive and finite");
  return success();
}
