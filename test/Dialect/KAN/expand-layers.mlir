// RUN: moka-opt %s --kan-expand-layers --canonicalize --cse | FileCheck %s

// The rational layer: the broadcast bias is the accumulator, kan.rational
// stays an op (so that fusion sees it) and feeds one contraction. Cout = 64
// is a multiple of the 32-channel weight panel: the weight is read as two
// contiguous [Cin, 32] panels and the accumulator viewed as [?, 2, 32]. The
// multiply-add may become an FMA.
// CHECK-DAG: #[[$BIAS:.*]] = affine_map<(d0, d1) -> (d1)>
// CHECK-DAG: #[[$LHS:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d3)>
// CHECK-DAG: #[[$W:.*]] = affine_map<(d0, d1, d2, d3) -> (d1, d3, d2)>
// CHECK-DAG: #[[$OUT:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @rational
// CHECK:         %[[ACC:.*]] = linalg.generic {indexing_maps = [#[[$BIAS]], {{.*}}], iterator_types = ["parallel", "parallel"]} ins(%arg2 : tensor<64xf32>)
// CHECK:         %[[ACT:.*]] = kan.rational %arg0, %arg3, %arg4
// CHECK:         %[[WE:.*]] = tensor.expand_shape %arg1 {{\[}}[0, 1], [2]] output_shape [2, 32, 32]
// CHECK:         %[[WP:.*]] = linalg.transpose ins(%[[WE]] : tensor<2x32x32xf32>) outs(%{{.*}} : tensor<2x32x32xf32>) permutation = [0, 2, 1]
// CHECK:         %[[ACCV:.*]] = tensor.expand_shape %[[ACC]] {{\[}}[0], [1, 2]] output_shape [%{{.*}}, 2, 32]
// CHECK:         %[[Y:.*]] = linalg.generic {indexing_maps = [#[[$LHS]], #[[$W]], #[[$OUT]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[ACT]], %[[WP]] : tensor<?x32xf32>, tensor<2x32x32xf32>) outs(%[[ACCV]] : tensor<?x2x32xf32>)
// CHECK:           arith.mulf {{.*}} fastmath<contract>
// CHECK:           arith.addf {{.*}} fastmath<contract>
// CHECK:         tensor.collapse_shape %[[Y]] {{\[}}[0], [1, 2]] : tensor<?x2x32xf32> into tensor<?x64xf32>
// CHECK-NOT:     kan.layer
func.func @rational(%x: tensor<?x32xf32>, %w: tensor<64x32xf32>, %b: tensor<64xf32>, %num: tensor<8x6xf32>, %den: tensor<8x4xf32>) -> tensor<?x64xf32> {
  %y = kan.layer rational %x, %w bias(%b : tensor<64xf32>) coefficients(%num, %den : tensor<8x6xf32>, tensor<8x4xf32>) : tensor<?x32xf32>, tensor<64x32xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// B-spline with its base branch in f16: zero accumulator, SiLU branch, the
// basis expansion phi[4, 32, 8] indexed by the basis function, the spline
// contraction reducing over (Cin, K) in f32, one rounding to f16. Cout = 48
// is no multiple of the panel: the weights are read through plain
// transposes with output channels last.
// CHECK-LABEL: func.func @bspline
// CHECK:         %[[ZERO:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<4x48xf32>)
// CHECK:         %[[SILU:.*]] = linalg.generic {{.*}} ins(%arg0 : tensor<4x32xf16>) outs(%{{.*}} : tensor<4x32xf32>)
// CHECK:           math.exp
// CHECK:         %[[WBT:.*]] = linalg.transpose ins(%arg2 : tensor<48x32xf16>)
// CHECK:         %[[BASE:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[SILU]], %[[WBT]] : tensor<4x32xf32>, tensor<32x48xf16>) outs(%[[ZERO]] : tensor<4x48xf32>)
// CHECK:         %[[PHI:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel"]} ins(%arg0 : tensor<4x32xf16>) outs(%{{.*}} : tensor<4x32x8xf32>)
// CHECK:           linalg.index 2
// CHECK:           arith.cmpf oge
// CHECK:           arith.cmpf olt
// CHECK:         %[[WST:.*]] = linalg.transpose ins(%arg1 : tensor<48x32x8xf16>) outs(%{{.*}} : tensor<32x8x48xf16>) permutation = [1, 2, 0]
// CHECK:         %[[SPL:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction", "reduction"]} ins(%[[PHI]], %[[WST]] : tensor<4x32x8xf32>, tensor<32x8x48xf16>) outs(%[[BASE]] : tensor<4x48xf32>)
// CHECK:         linalg.generic {{.*}} ins(%[[SPL]] : tensor<4x48xf32>) outs(%{{.*}} : tensor<4x48xf16>)
// CHECK:           arith.truncf
func.func @bspline(%x: tensor<4x32xf16>, %w: tensor<48x32x8xf16>, %wb: tensor<48x32xf16>) -> tensor<4x48xf16> {
  %y = kan.layer bspline %x, %w base(%wb : tensor<48x32xf16>) : tensor<4x32xf16>, tensor<48x32x8xf16> -> tensor<4x48xf16>
  return %y : tensor<4x48xf16>
}

// Chebyshev, Fourier and RBF expansions: tanh; cos and sin; exp.
// CHECK-LABEL: func.func @others
// CHECK:         math.tanh
// CHECK:         math.cos
// CHECK:         math.sin
// CHECK:         math.exp
func.func @others(%x: tensor<4x32xf32>, %wc: tensor<8x32x4xf32>, %wf: tensor<8x32x6xf32>, %wr: tensor<8x32x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>) {
  %c = kan.layer chebyshev %x, %wc : tensor<4x32xf32>, tensor<8x32x4xf32> -> tensor<4x8xf32>
  %f = kan.layer fourier %x, %wf {grid_size = 3 : i64} : tensor<4x32xf32>, tensor<8x32x6xf32> -> tensor<4x8xf32>
  %r = kan.layer rbf %x, %wr : tensor<4x32xf32>, tensor<8x32x8xf32> -> tensor<4x8xf32>
  return %c, %f, %r : tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>
}
