// RUN: moka-opt %s --kan-expand-layers --kan-fuse-into-contractions="row-tile=16" --canonicalize --cse | FileCheck %s

// With weight panels on: fc1 feeds a rational, so it keeps a plain
// [Cin, Cout] weight transpose and an unreshaped output (the rational is its
// epilogue); fc2 reads 32-channel panels and accumulates into the [.., 2, 32]
// view of its output. The whole block is still one loop over row tiles.
// CHECK-LABEL: func.func @kat_ffn
// CHECK:         linalg.transpose ins(%arg3 : tensor<128x64xf32>) outs(%{{.*}} : tensor<64x128xf32>) permutation = [1, 0]
// CHECK:         tensor.expand_shape %arg7 {{\[}}[0, 1], [2]] output_shape [2, 32, 128]
// CHECK:         linalg.transpose ins(%{{.*}} : tensor<2x32x128xf32>) outs(%{{.*}} : tensor<2x128x32xf32>) permutation = [0, 2, 1]
// CHECK:         %[[R:.*]] = scf.forall {{.*}} -> (tensor<?x2x32xf32>)
// CHECK:           kan.rational
// CHECK:           } -> tensor<?x128xf32>
// CHECK:           kan.rational
// CHECK:           } -> tensor<?x2x32xf32>
// CHECK:         tensor.collapse_shape %[[R]] {{\[}}[0], [1, 2]] : tensor<?x2x32xf32> into tensor<?x64xf32>
// CHECK-NOT:     scf.forall
func.func @kat_ffn(%x: tensor<?x64xf32>, %a1: tensor<8x6xf32>, %b1: tensor<8x4xf32>, %w1: tensor<128x64xf32>, %c1: tensor<128xf32>, %a2: tensor<8x6xf32>, %b2: tensor<8x4xf32>, %w2: tensor<64x128xf32>, %c2: tensor<64xf32>) -> tensor<?x64xf32> {
  %h = kan.layer rational %x, %w1 bias(%c1 : tensor<128xf32>) coefficients(%a1, %b1 : tensor<8x6xf32>, tensor<8x4xf32>) : tensor<?x64xf32>, tensor<128x64xf32> -> tensor<?x128xf32>
  %y = kan.layer rational %h, %w2 bias(%c2 : tensor<64xf32>) coefficients(%a2, %b2 : tensor<8x6xf32>, tensor<8x4xf32>) : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
