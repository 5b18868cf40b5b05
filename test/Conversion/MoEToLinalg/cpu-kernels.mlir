// RUN: moka-opt %s --convert-moe-to-linalg=cpu-kernels=true --canonicalize --cse | FileCheck %s

// Experts with cpu-kernels: up to 128 rows per expert on average (here
// 8 * 128 = 1024 rows), explicit vector code on the weight stacks read in
// place. The gate and up product is an scf.forall over tiles of 16 of the
// 96 hidden channels (the largest of 64, 32, 16 leaving 16 tasks, else 16);
// each task walks the 8 experts' segments, blocks of 4
// channels (4 rows of w1 and 4 of w3), and two segment rows at a time
// (then the odd last row): 16 accumulators over 16-lane steps of d, one
// reduction each, silu(g) * u written 4 channels at a time. The down
// product is the same over tiles of the 64 output channels, 8 rows of w2 a
// block. Beyond 1024 rows, the products on
// transposed stacks.
// CHECK-LABEL: func.func @experts
// CHECK:         %[[SMALL:.*]] = arith.cmpi ule, %{{.*}}, %c1024
// CHECK:         scf.if %[[SMALL]]
// CHECK-NOT:       linalg.transpose
// CHECK:           scf.forall (%{{.*}}) in (6)
// CHECK:             scf.for %[[E:.*]] = %c0 to %c8
// CHECK:               scf.for %{{.*}} = %c0 to %c16 step %c4
// CHECK:                 scf.for %{{.*}} step %c2
// CHECK:                   scf.for %[[C:.*]] = %c0 to %c64 step %c16 {{.*}} -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// CHECK-COUNT-4:             vector.transfer_read %arg3[%[[E]], %{{.*}}, %[[C]]]
// CHECK-COUNT-4:             vector.transfer_read %arg5[%[[E]], %{{.*}}, %[[C]]]
// CHECK-COUNT-2:             vector.transfer_read %arg0[%{{.*}}, %[[C]]]
// CHECK-COUNT-16:            math.fma
// CHECK:                   vector.reduction <add>
// CHECK:                   math.exp {{.*}} : vector<4xf32>
// CHECK:                   vector.transfer_write {{.*}} : vector<4xf32>, tensor<?x16xf32>
// CHECK:                 scf.for %{{.*}} step %c1
// CHECK:             tensor.parallel_insert_slice
// CHECK:           scf.forall (%{{.*}}) in (4)
// CHECK:                   vector.transfer_read %arg4
// CHECK:                   vector.transfer_write {{.*}} : vector<8xf32>, tensor<?x16xf32>
// CHECK:         } else {
// CHECK:           linalg.transpose ins(%arg3 : tensor<8x96x64xf32>)
func.func @experts(%x: tensor<?x64xf32>, %rows: tensor<?xi32>, %offsets: tensor<9xi32>, %w1: tensor<8x96x64xf32>, %w2: tensor<8x64x96xf32>, %w3: tensor<8x96x64xf32>) -> tensor<?x64xf32> {
  %y = moe.experts swiglu %x, %rows, %offsets, %w1, %w2 up(%w3 : tensor<8x96x64xf32>) : tensor<?x64xf32>, tensor<?xi32>, tensor<9xi32>, tensor<8x96x64xf32>, tensor<8x64x96xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// Shared experts with cpu-kernels: up to 128 tokens, the same kernel as one
// expert (weights viewed as [1, o, c]) whose segment is every token; GELU
// blocks of 8 channels.
// CHECK-LABEL: func.func @shared
// CHECK:         %[[SMALL:.*]] = arith.cmpi ule, %{{.*}}, %c128
// CHECK:         scf.if %[[SMALL]]
// CHECK:           tensor.expand_shape %arg1 {{\[}}[0, 1], [2]] output_shape [1, 32, 64]
// CHECK:           tensor.expand_shape %arg2 {{\[}}[0, 1], [2]] output_shape [1, 64, 32]
// CHECK:           scf.forall (%{{.*}}) in (2)
// CHECK:             scf.for %{{.*}} = %c0 to %c16 step %c8
// CHECK:               vector.transfer_write {{.*}} : vector<8xf32>, tensor<?x16xf32>
// CHECK:         } else {
// CHECK:           linalg.transpose
// CHECK-NOT:     moe.shared_experts
func.func @shared(%x: tensor<?x64xf32>, %w1: tensor<32x64xf32>, %w2: tensor<64x32xf32>) -> tensor<?x64xf32> {
  %y = moe.shared_experts gelu %x, %w1, %w2 : tensor<?x64xf32>, tensor<32x64xf32>, tensor<64x32xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
