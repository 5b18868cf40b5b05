// RUN: moka-opt %s --convert-kan-to-linalg --canonicalize --cse | FileCheck %s

// dx is one element-wise generic on the grouped view. The coefficient
// gradients: an scf.forall over blocks of 64 rows (ceildiv, independent of
// the thread count) writes per-block partials keeping 16 channel lanes
// apart, one tensor per coefficient (6 + 4), then fixed-order reductions
// over blocks and lanes. No atomics anywhere.
// CHECK-DAG: #[[$BLOCKS:.*]] = affine_map<()[s0] -> (s0 ceildiv 64)>
// CHECK-DAG: #[[$ROWS:.*]] = affine_map<(d0)[s0] -> (d0 * -64 + s0, 64)>
// CHECK-LABEL: func.func @grad
// CHECK:         %[[DX:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel"]} ins(%{{.*}}, %{{.*}}, {{.*}} : tensor<?x8x384xf32>, tensor<?x8x384xf32>,
// CHECK:           math.copysign
// CHECK:         tensor.expand_shape %arg0 {{\[}}[0], [1, 2, 3]] output_shape [%{{.*}}, 8, 24, 16]
// CHECK:         %[[NB:.*]] = affine.apply #[[$BLOCKS]]()
// CHECK:         %[[P:.*]]:10 = scf.forall (%[[B:.*]]) in (%[[NB]])
// CHECK:           affine.min #[[$ROWS]](%[[B]])
// CHECK:           linalg.generic {{.*}} iterator_types = ["parallel", "reduction", "reduction", "parallel"]} ins({{.*}} : tensor<?x8x24x16xf32>, tensor<?x8x24x16xf32>,
// CHECK:           } -> (tensor<8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>)
// CHECK-COUNT-10:  tensor.parallel_insert_slice
// CHECK-COUNT-10: linalg.generic {{.*}} iterator_types = ["parallel", "reduction", "reduction"]} ins(%[[P]]#{{[0-9]}}
// CHECK-NOT:     atomic
// CHECK:         return %{{.*}}, %{{.*}}, %{{.*}} : tensor<?x3072xf32>, tensor<8x6xf32>, tensor<8x4xf32>
func.func @grad(%x: tensor<?x3072xf32>, %dy: tensor<?x3072xf32>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> (tensor<?x3072xf32>, tensor<8x6xf32>, tensor<8x4xf32>) {
  %dx, %da, %db = kan.rational_grad %x, %dy, %a, %b : tensor<?x3072xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %dx, %da, %db : tensor<?x3072xf32>, tensor<8x6xf32>, tensor<8x4xf32>
}

// A shared numerator sums its gradient over the groups too; 100 channels per
// group allow 4 lanes (the single block of rows needs no loop).
// CHECK-LABEL: func.func @shared
// CHECK:         output_shape [3, 2, 25, 4]
// CHECK:         linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%{{.*}} : tensor<2x4xf32>) outs(%{{.*}} : tensor<1x4xf32>)
func.func @shared(%x: tensor<3x200xf32>, %dy: tensor<3x200xf32>, %a: tensor<1x4xf32>, %b: tensor<2x2xf32>) -> (tensor<3x200xf32>, tensor<1x4xf32>, tensor<2x2xf32>) {
  %dx, %da, %db = kan.rational_grad %x, %dy, %a, %b {m = 3 : i64, n = 2 : i64} : tensor<3x200xf32>, tensor<1x4xf32>, tensor<2x2xf32>
  return %dx, %da, %db : tensor<3x200xf32>, tensor<1x4xf32>, tensor<2x2xf32>
}
