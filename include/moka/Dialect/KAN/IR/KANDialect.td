//===- KANDialect.td - Kolmogorov-Arnold network dialect ---*- tablegen -*-===//
//
// The `kan` dialect: learnable basis activations and KAN layers.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_DIALECT_KAN_IR_KANDIALECT_TD
#define MOKA_DIALECT_KAN_IR_KANDIALECT_TD

include "mlir/IR/OpBase.td"

def KAN_Dialect : Dialect {
  let name = "kan";
  let cppNamespace = "::moka::kan";
  let summary = "Kolmogorov-Arnold network activations and layers";
  let description = [{
    The `kan` dialect models the building blocks of Kolmogorov-Arnold networks
    as first-class operations: learnable basis activations (the group-rational
    activation of KAT's GR-KAN first) and, later, KAN layers that combine a
    basis expansion with a matrix product. Keeping them as ops, rather than as
    the element-wise arithmetic they expand to, lets moka fuse them into the
    matrix products around them, tile them and differentiate them.

    All ops work on ranked tensors with the channel dimension last. Arithmetic
    is carried out in `f32` whatever the storage type (`f32`, `f16`, `bf16`).
  }];
}

class KAN_Op<string mnemonic, list<Trait> traits = []>
    : Op<KAN_Dialect, mnemonic, traits>;

#endif // MOKA_DIALECT_KAN_IR_KANDIALECT_TD
