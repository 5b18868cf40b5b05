// RUN: moka-opt %s --pass-pipeline="builtin.module(func.func(moka-tile-and-vectorize{min-parallel-size=1024}, canonicalize))" | FileCheck %s

// A transpose is copied in 16 x 16 tiles: rows read contiguously, a 2-D
// vector.transpose in registers, rows written contiguously.
// CHECK-LABEL: func.func @stack
// CHECK:         scf.forall ({{.*}}) = (0, 0) to (4, 32) step (1, 16)
// CHECK:           scf.for {{.*}} = %c0 to %c64 step %c16
// CHECK-COUNT-16:    vector.transfer_read {{.*}} : tensor<1x16x16xf32>, vector<1x16xf32>
// CHECK:             vector.transpose {{.*}} [0, 2, 1] : vector<1x16x16xf32> to vector<1x16x16xf32>
// CHECK-COUNT-16:    vector.transfer_write {{.*}} : vector<1x16xf32>, tensor<1x16x16xf32>
// CHECK-NOT:     linalg.transpose
func.func @stack(%w: tensor<4x64x32xf32>) -> tensor<4x32x64xf32> {
  %e = tensor.empty() : tensor<4x32x64xf32>
  %t = linalg.transpose ins(%w : tensor<4x64x32xf32>) outs(%e : tensor<4x32x64xf32>) permutation = [0, 2, 1]
  return %t : tensor<4x32x64xf32>
}
