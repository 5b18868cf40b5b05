// RUN: moka-opt %s --convert-moe-to-linalg=gpu-kernels=true --canonicalize --cse | FileCheck %s
// RUN: moka-opt %s --convert-moe-to-linalg="gpu-kernels=true workgroup-memory=false" --canonicalize --cse | FileCheck %s --check-prefix=CPU

// Experts with gpu-kernels: two block loops (gate and up, then down) over
// (64-column tiles, 64-row tiles of the rows, experts). Each block stages
// tiles of the gathered rows and of the weights (bf16 converted as they
// are staged) in workgroup memory: 16 steps along d for two weight
// operands, accumulators 64 x 64 per operand; 256-thread loops zero them,
// copy a step, accumulate 4 x 4 outputs per thread in registers (32 fma a
// step for gate and up, 16 for down) and finally write silu(g) * u.
// CHECK-LABEL: func.func @experts
// CHECK:         %[[H:.*]] = memref.alloc(%{{.*}}) : memref<?x96xf32>
// CHECK:         scf.forall ({{.*}}) in (%{{.*}}, 2, 8) {
// CHECK-COUNT-3:   memref.alloca() : memref<16x66xf32, #gpu.address_space<workgroup>>
// CHECK-COUNT-2:   memref.alloca() : memref<64x64xf32, #gpu.address_space<workgroup>>
// CHECK:           scf.if
// CHECK:             scf.forall (%{{.*}}) in (256)
// CHECK:             } {mapping = [#gpu.thread<linear_dim_0>]}
// CHECK:             scf.for %{{.*}} = %c0 to %c64 step %c16 {
// CHECK:               scf.forall (%{{.*}}) in (256)
// CHECK:                 tensor.extract %arg1
// CHECK:                 tensor.extract %arg0
// CHECK:                 arith.extf {{.*}} : bf16 to f32
// CHECK:                 tensor.extract %arg3
// CHECK:                 tensor.extract %arg5
// CHECK:               scf.forall (%{{.*}}) in (256)
// CHECK:                 scf.for {{.*}} -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32)
// CHECK-COUNT-32:          math.fma
// CHECK:             scf.forall (%{{.*}}) in (256)
// CHECK:               math.exp
// CHECK:               memref.store %{{.*}}, %[[H]]
// CHECK:         } {mapping = [#gpu.block<x>, #gpu.block<y>, #gpu.block<z>]}
// CHECK:         memref.alloc(%{{.*}}) : memref<?x64xf32>
// CHECK:         linalg.fill {{.*}} outs(%{{.*}} : memref<?x64xf32, strided<[64, 1], offset: ?>>)
// CHECK:         scf.forall ({{.*}}) in (%{{.*}}, 1, 8) {
// CHECK:           memref.alloca() : memref<32x65xf32, #gpu.address_space<workgroup>>
// CHECK:           scf.for %{{.*}} = %c0 to %c96 step %c32 {
// CHECK:             memref.load %[[H]]
// CHECK-COUNT-16:        math.fma
// CHECK:         bufferization.to_tensor %{{.*}} restrict writable
// CHECK-NOT:     moe.experts
// CPU-LABEL: func.func @experts
// CPU-NOT:     #gpu.address_space
// CPU:         memref.alloc() : memref<16x66xf32>
// CPU:         mapping = [#gpu.thread<linear_dim_0>]
func.func @experts(%x: tensor<?x64xbf16>, %rows: tensor<?xi32>, %offsets: tensor<9xi32>, %w1: tensor<8x96x64xbf16>, %w2: tensor<8x64x96xbf16>, %w3: tensor<8x96x64xbf16>) -> tensor<?x64xf32> {
  %y = moe.experts swiglu %x, %rows, %offsets, %w1, %w2 up(%w3 : tensor<8x96x64xbf16>) : tensor<?x64xbf16>, tensor<?xi32>, tensor<9xi32>, tensor<8x96x64xbf16>, tensor<8x64x96xbf16> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// Shared experts: the same kernels as one expert (weights viewed as
// [1, o, c]) whose segment is every token, read without a gather.
// CHECK-LABEL: func.func @shared
// CHECK:         scf.forall ({{.*}}) in (%{{.*}}, 1, 1) {
// CHECK:           memref.alloca() : memref<32x65xf32, #gpu.address_space<workgroup>>
// CHECK:         scf.forall ({{.*}}) in (%{{.*}}, 1, 1) {
// CHECK-NOT:     moe.shared_experts
func.func @shared(%x: tensor<?x64xf32>, %w1: tensor<32x64xf32>, %w2: tensor<64x32xf32>) -> tensor<?x64xf32> {
  %y = moe.shared_experts gelu %x, %w1, %w2 : tensor<?x64xf32>, tensor<32x64xf32>, tensor<64x32xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
