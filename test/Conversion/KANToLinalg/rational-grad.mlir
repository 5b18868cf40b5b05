// RUN: moka-opt %s --convert-kan-to-linalg --canonicalize --cse | FileCheck %s

// One scf.forall over blocks of 8 rows (ceildiv; the partition depends on
// the shape only, never on the thread count). Each block computes its dx
// together with t = dy/Q and u = -dy P/Q^2, and from those, while they are
// in cache, per-block partial sums of the coefficient gradients that keep 16
// channel lanes apart, one tensor per coefficient (6 + 4). Fixed-order
// reductions over blocks and lanes follow, in f64. No atomics anywhere.
// CHECK-DAG: #[[$BLOCKS:.*]] = affine_map<()[s0] -> (s0 ceildiv 8)>
// CHECK-DAG: #[[$ROWS:.*]] = affine_map<(d0)[s0] -> (d0 * -8 + s0, 8)>
// CHECK-LABEL: func.func @grad
// CHECK:         tensor.expand_shape %arg0 {{\[}}[0], [1, 2, 3]] output_shape [%{{.*}}, 8, 24, 16]
// CHECK:         %[[NB:.*]] = affine.apply #[[$BLOCKS]]()
// CHECK:         %[[P:.*]]:11 = scf.forall (%[[B:.*]]) in (%[[NB]])
// CHECK:           affine.min #[[$ROWS]](%[[B]])
// CHECK:           %[[DX:.*]]:3 = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins({{.*}} : tensor<?x8x24x16xf32>, tensor<?x8x24x16xf32>,
// CHECK:             math.copysign
// CHECK:             arith.divf
// CHECK-NOT:         arith.divf
// CHECK:           } -> (tensor<?x8x24x16xf32>, tensor<?x8x24x16xf32>, tensor<?x8x24x16xf32>)
// CHECK:           linalg.generic {{.*}} iterator_types = ["parallel", "reduction", "reduction", "parallel"]} ins(%{{.*}}, %[[DX]]#1, %[[DX]]#2 : tensor<?x8x24x16xf32>, tensor<?x8x24x16xf32>, tensor<?x8x24x16xf32>)
// CHECK-NOT:         arith.divf
// CHECK:           } -> (tensor<8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>)
// CHECK-COUNT-10:  tensor.parallel_insert_slice {{.*}} [1, 8, 16] [1, 1, 1] : tensor<8x16xf32> into tensor<?x8x16xf32>
// CHECK:           tensor.parallel_insert_slice %[[DX]]#0
// CHECK:         %[[DXR:.*]] = tensor.collapse_shape %[[P]]#10 {{\[}}[0], [1, 2, 3]] : tensor<?x8x24x16xf32> into tensor<?x3072xf32>
// CHECK-COUNT-10: linalg.generic {{.*}} iterator_types = ["parallel", "reduction", "reduction"]} ins(%[[P]]#{{[0-9]}}
// CHECK-NOT:     atomic
// CHECK:         return %[[DXR]], %{{.*}}, %{{.*}} : tensor<?x3072xf32>, tensor<8x6xf32>, tensor<8x4xf32>
func.func @grad(%x: tensor<?x3072xf32>, %dy: tensor<?x3072xf32>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> (tensor<?x3072xf32>, tensor<8x6xf32>, tensor<8x4xf32>) {
  %dx, %da, %db = kan.rational_grad %x, %dy, %a, %b : tensor<?x3072xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %dx, %da, %db : tensor<?x3072xf32>, tensor<8x6xf32>, tensor<8x4xf32>
}

// A shared numerator sums its gradient over the groups too; 100 channels per
// group allow 4 lanes (the single block of rows needs no loop).
// CHECK-LABEL: func.func @shared
// CHECK:         output_shape [3, 2, 25, 4]
// CHECK:         linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%{{.*}} : tensor<2x4xf32>) outs(%{{.*}} : tensor<1x4xf64>)
func.func @shared(%x: tensor<3x200xf32>, %dy: tensor<3x200xf32>, %a: tensor<1x4xf32>, %b: tensor<2x2xf32>) -> (tensor<3x200xf32>, tensor<1x4xf32>, tensor<2x2xf32>) {
  %dx, %da, %db = kan.rational_grad %x, %dy, %a, %b {m = 3 : i64, n = 2 : i64} : tensor<3x200xf32>, tensor<1x4xf32>, tensor<2x2xf32>
  return %dx, %da, %db : tensor<3x200xf32>, tensor<1x4xf32>, tensor<2x2xf32>
}

// Two dynamic leading dimensions cannot be restored from the flattened rows:
// dx is then its own element-wise pass on the grouped view.
// CHECK-LABEL: func.func @two_dynamic
// CHECK:         linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins({{.*}} : tensor<?x?x4x16xf32>, tensor<?x?x4x16xf32>,
// CHECK:         scf.forall
func.func @two_dynamic(%x: tensor<?x?x64xf32>, %dy: tensor<?x?x64xf32>, %a: tensor<4x6xf32>, %b: tensor<4x4xf32>) -> (tensor<?x?x64xf32>, tensor<4x6xf32>, tensor<4x4xf32>) {
  %dx, %da, %db = kan.rational_grad %x, %dy, %a, %b : tensor<?x?x64xf32>, tensor<4x6xf32>, tensor<4x4xf32>
  return %dx, %da, %db : tensor<?x?x64xf32>, tensor<4x6xf32>, tensor<4x4xf32>
}
