//===- KVOps.td - Compressed KV-cache dialect --------------*- tablegen -*-===//
//
// The `kv` dialect: compressed key-value caches and attention on them.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_DIALECT_KV_IR_KVOPS_TD
#define MOKA_DIALECT_KV_IR_KVOPS_TD

include "mlir/IR/OpBase.td"

def KV_Dialect : Dialect {
  let name = "kv";
  let cppNamespace = "::moka::kv";
  let summary = "Compressed key-value caches and decode attention";
  let description = [{
    The `kv` dialect makes the format of a transformer's key-value cache part
    of the IR: quantized (8, 4 or 2 bits, grouped per channel for keys and per
    token for values, with a full-precision residual window) and low-rank
    caches are types with parameters, and attention reads them directly,
    dequantizing in registers, so that decoding runs at the byte floor of the
    compressed cache.

    The dialect is registered with every moka tool; its types and operations
    are being added.
  }];
}

#endif // MOKA_DIALECT_KV_IR_KVOPS_TD
