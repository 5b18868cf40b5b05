//===- KVOps.td - Compressed KV-cache dialect --------------*- tablegen -*-===//
//
// The `kv` dialect: compressed key-value caches and attention on them.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_DIALECT_KV_IR_KVOPS_TD
#define MOKA_DIALECT_KV_IR_KVOPS_TD

include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/OpBase.td"
include "mlir/IR/CommonAttrConstraints.td"
include "mlir/IR/CommonTypeConstraints.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def KV_Dialect : Dialect {
  let name = "kv";
  let cppNamespace = "::moka::kv";
  let useDefaultTypePrinterParser = 1;
  let summary = "Compressed key-value caches and decode attention";
  let description = [{
    The `kv` dialect makes the format of a transformer's key-value cache part
    of the IR: uncompressed, quantized (8, 4 or 2 bits, grouped per channel
    for keys and per token for values, with a full-precision residual
    window) and low-rank latent caches are one type with parameters
    (`!kv.cache`), and decode attention reads them directly, dequantizing as
    it reads, so that decoding runs at the byte floor of the compressed
    cache. At function boundaries a cache is its storage tensors
    (docs/kv.md), which a host program keeps between decode steps.
  }];
}

//===----------------------------------------------------------------------===//
// Types
//===----------------------------------------------------------------------===//

def KV_CacheType : TypeDef<KV_Dialect, "Cache"> {
  let mnemonic = "cache";
  let summary = "A key-value cache: shape, element format and compression";
  let description = [{
    `!kv.cache<BxHxSxD, format[, key_group = G_t, value_group = G_c,
    window = R][, rank = r]>`: a cache of `S` tokens for `B` sequences and
    `H` key/value heads of size `D`. `format` is f32, f16 or bf16 (stored as
    is) or i8, i4, i2 (asymmetric min-max quantization: keys per channel over
    groups of `G_t` tokens, values per token over groups of `G_c` channels,
    the latest tokens kept in a full-precision window of `R`). `rank = r`
    makes a low-rank latent cache of `c[B, S, r]`, from which keys and values
    are reconstructed by up-projections.

    ```mlir
    !kv.cache<1x8x4096x128, f32>
    !kv.cache<1x8x4096x128, i4, key_group = 32, value_group = 32, window = 128>
    !kv.cache<1x32x4096x128, f32, rank = 512>
    ```
  }];
  let parameters = (ins
    ArrayRefParameter<"int64_t", "B x H x S x D">:$shape,
    "::mlir::Type":$format,
    DefaultValuedParameter<"int64_t", "0">:$keyGroup,
    DefaultValuedParameter<"int64_t", "0">:$valueGroup,
    DefaultValuedParameter<"int64_t", "0">:$window,
    DefaultValuedParameter<"int64_t", "0">:$rank
  );
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    int64_t getBatch() const { return getShape()[0]; }
    int64_t getHeads() const { return getShape()[1]; }
    int64_t getCapacity() const { return getShape()[2]; }
    int64_t getHeadSize() const { return getShape()[3]; }
    /// Bits per code of a quantized cache; 0 for a float cache.
    unsigned getBits() const;
    bool isQuantized() const { return getBits() != 0; }
    bool isLatent() const { return getRank() != 0; }
    /// The tensors that hold the cache, in the order of docs/kv.md.
    ::llvm::SmallVector<::mlir::RankedTensorType> getStorageTypes() const;
  }];
}

def KV_AnyCache : Type<CPred<"::llvm::isa<::moka::kv::CacheType>($_self)">,
                       "kv cache", "::moka::kv::CacheType">;

//===----------------------------------------------------------------------===//
// Operations
//===----------------------------------------------------------------------===//

class KV_Op<string mnemonic, list<Trait> traits = []>
    : Op<KV_Dialect, mnemonic, traits>;

def KV_EmptyOp : KV_Op<"empty", [Pure]> {
  let summary = "A cache holding no tokens";
  let description = [{
    ```mlir
    %c = kv.empty : !kv.cache<1x8x4096x128, i4, key_group = 32, value_group = 32, window = 128>
    ```
  }];
  let results = (outs KV_AnyCache:$result);
  let assemblyFormat = "attr-dict `:` qualified(type($result))";
}

def KV_AppendOp : KV_Op<"append", [Pure,
    AllTypesMatch<["cache", "result"]>]> {
  let summary = "Append tokens to a cache (quantizing what leaves the window)";
  let description = [{
    Appends `T` tokens' keys and values (`B x H x T x D`; for a latent cache
    one operand `c : B x T x r`). In a quantized cache new tokens enter the
    full-precision window; when the window is full, its oldest `key_group`
    tokens are quantized into the compressed part first (docs/kv.md).
    Appending past the capacity is a run-time error.

    ```mlir
    %c1 = kv.append %c0, %k, %v : !kv.cache<1x8x4096x128, f32>, tensor<1x8x?x128xf32>, tensor<1x8x?x128xf32>
    ```
  }];
  let arguments = (ins KV_AnyCache:$cache,
                       RankedTensorOf<[F32, F16, BF16]>:$keys,
                       Optional<RankedTensorOf<[F32, F16, BF16]>>:$values);
  let results = (outs KV_AnyCache:$result);
  let assemblyFormat = [{
    $cache `,` $keys (`,` $values^)? attr-dict `:` qualified(type($cache)) `,`
    type($keys) (`,` type($values)^)?
  }];
  let hasVerifier = 1;
}

def KV_DecodeAttentionOp : KV_Op<"decode_attention", [Pure,
    AttrSizedOperandSegments]> {
  let summary = "Attention of one query token per sequence over a cache";
  let description = [{
    `o = softmax(q K^T * scale) V` over the cache's tokens, for
    `q : B x H_q x D` with `H_q = g * H_kv` (query head `h` attends with
    key/value head `h / g`); `scale` defaults to `1 / sqrt(D)`. Quantized
    tokens are dequantized as they are read. With no tokens the result is
    zero. On a latent cache, `up(up_k, up_v : r x H x D)` reconstructs keys
    and values (`K = c up_k`); without it, attention runs on the latent
    itself (`q : B x H_q x r`), as `kv-absorb-latent-projections` arranges.

    ```mlir
    %o = kv.decode_attention %q, %c : tensor<1x32x128xf32>, !kv.cache<1x8x4096x128, f32> -> tensor<1x32x128xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$query, KV_AnyCache:$cache,
                       Optional<RankedTensorOf<[F32]>>:$upKeys,
                       Optional<RankedTensorOf<[F32]>>:$upValues,
                       OptionalAttr<F64Attr>:$scale);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = [{
    $query `,` $cache (`up` `(` $upKeys^ `,` $upValues `:` type($upKeys) `,`
    type($upValues) `)`)? attr-dict `:` type($query) `,`
    qualified(type($cache)) `->` type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The scale of the scores: the attribute, else 1 / sqrt(D).
    double getEffectiveScale();
  }];
}

def KV_PrefillAttentionOp : KV_Op<"prefill_attention", [Pure]> {
  let summary = "Attention within a block of tokens (prefill), optionally causal";
  let description = [{
    `o = softmax(q K^T * scale + mask) V` for a block of `T` tokens:
    `q : B x H_q x T x D`, keys and values `B x H_kv x T x D` (f32, f16 or
    bf16), `H_q = g * H_kv` (query head `h` uses key/value head `h / g`).
    With `causal`, query `i` attends to keys `0..i`. `scale` defaults to
    `1 / sqrt(D)`. The keys and values are those a `kv.append` then stores.

    ```mlir
    %o = kv.prefill_attention %q, %k, %v {causal} : tensor<1x32x?x128xf32>, tensor<1x8x?x128xf32>, tensor<1x8x?x128xf32> -> tensor<1x32x?x128xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$query,
                       RankedTensorOf<[F32, F16, BF16]>:$keys,
                       RankedTensorOf<[F32, F16, BF16]>:$values,
                       UnitAttr:$causal, OptionalAttr<F64Attr>:$scale);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = [{
    $query `,` $keys `,` $values attr-dict `:` type($query) `,` type($keys)
    `,` type($values) `->` type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    double getEffectiveScale();
  }];
}

#endif // MOKA_DIALECT_KV_IR_KVOPS_TD
