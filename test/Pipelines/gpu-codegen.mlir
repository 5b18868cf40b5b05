// RUN: moka-opt %s --moka-gpu-codegen | FileCheck %s
// RUN: moka-opt %s --moka-gpu-codegen=workgroup-memory=false | FileCheck %s --check-prefix=CPU

// The GPU pipeline's first stage on a Mixtral-style layer: still on
// tensors, the router's gate product and the experts' two products as
// block loops with workgroup tiles and 256-thread loops; with
// workgroup-memory=false the same loops with ordinary tiles.
// CHECK-LABEL: func.func @layer
// CHECK-COUNT-3: } {mapping = [#gpu.block<x>, #gpu.block<y>, #gpu.block<z>]}
// CHECK-NOT:     = moe.
// CPU-LABEL:   func.func @layer
// CPU-NOT:       #gpu.address_space<workgroup>
// CPU:           mapping = [#gpu.thread<linear_dim_0>]
func.func @layer(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>,
                 %w1: tensor<8x96x64xf32>, %w2: tensor<8x64x96xf32>,
                 %w3: tensor<8x96x64xf32>) -> tensor<?x64xf32> {
  %y = moe.layer swiglu %x, %gate, %w1, %w2 up(%w3 : tensor<8x96x64xf32>)
      {k = 2 : i64, normalize = true}
      : tensor<?x64xf32>, tensor<8x64xf32>, tensor<8x96x64xf32>,
        tensor<8x64x96xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
