// RUN: moka-opt %s --split-input-file --kan-expand-layers="weight-panel=0" --kan-fuse-into-contractions="row-tile=16" --canonicalize --cse | FileCheck %s
// (Plain weight transposes keep the IR short; panels do not change the
// fusion.)

// KAT's feed-forward block fc2(rational2(fc1(rational1(x)))): one loop over
// 16-row tiles holds the whole chain; neither activation nor the hidden
// layer exists outside it.
// CHECK-LABEL: func.func @kat_ffn
// CHECK-NOT:     kan.rational
// CHECK:         %[[W1T:.*]] = linalg.transpose ins(%arg3
// CHECK:         %[[W2T:.*]] = linalg.transpose ins(%arg7
// CHECK:         scf.forall (%[[I:.*]]) = (0) to (%{{.*}}) step (16)
// CHECK:           %[[X:.*]] = tensor.extract_slice %arg0[%[[I]], 0] [%{{.*}}, 64] [1, 1]
// CHECK:           %[[A1:.*]] = kan.rational %[[X]], %arg1, %arg2 : tensor<?x64xf32>
// CHECK:           %[[B1:.*]] = linalg.generic {{.*}} ins(%arg4 : tensor<128xf32>)
// CHECK:           %[[H:.*]] = linalg.generic {{.*}} ins(%[[A1]], %[[W1T]] : tensor<?x64xf32>, tensor<64x128xf32>) outs(%[[B1]] : tensor<?x128xf32>)
// CHECK:           %[[A2:.*]] = kan.rational %[[H]], %arg5, %arg6 : tensor<?x128xf32>
// CHECK:           %[[B2:.*]] = linalg.generic {{.*}} ins(%arg8 : tensor<64xf32>)
// CHECK:           %[[Y:.*]] = linalg.generic {{.*}} ins(%[[A2]], %[[W2T]] : tensor<?x128xf32>, tensor<128x64xf32>) outs(%[[B2]] : tensor<?x64xf32>)
// CHECK:           tensor.parallel_insert_slice %[[Y]] into %{{.*}}[%[[I]], 0] [%{{.*}}, 64] [1, 1]
// CHECK-NOT:     kan.rational
// CHECK-NOT:     linalg.generic
// CHECK:         return
func.func @kat_ffn(%x: tensor<?x64xf32>, %a1: tensor<8x6xf32>, %b1: tensor<8x4xf32>, %w1: tensor<128x64xf32>, %c1: tensor<128xf32>, %a2: tensor<8x6xf32>, %b2: tensor<8x4xf32>, %w2: tensor<64x128xf32>, %c2: tensor<64xf32>) -> tensor<?x64xf32> {
  %h = kan.layer rational %x, %w1 bias(%c1 : tensor<128xf32>) coefficients(%a1, %b1 : tensor<8x6xf32>, tensor<8x4xf32>) : tensor<?x64xf32>, tensor<128x64xf32> -> tensor<?x128xf32>
  %y = kan.layer rational %h, %w2 bias(%c2 : tensor<64xf32>) coefficients(%a2, %b2 : tensor<8x6xf32>, tensor<8x4xf32>) : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Epilogue: a rational after a plain matrix product takes the product into
// its tile.
// CHECK-LABEL: func.func @epilogue
// CHECK:         scf.forall (%[[I:.*]]) = (0) to (256) step (16)
// CHECK:           %[[P:.*]] = linalg.matmul {{.*}} -> tensor<16x64xf32>
// CHECK:           %[[R:.*]] = kan.rational %[[P]], %arg2, %arg3 : tensor<16x64xf32>
// CHECK:           tensor.parallel_insert_slice %[[R]]
// CHECK-NOT:     linalg.matmul
func.func @epilogue(%x: tensor<256x32xf32>, %w: tensor<32x64xf32>, %a: tensor<4x6xf32>, %b: tensor<4x4xf32>) -> tensor<256x64xf32> {
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<256x64xf32>
  %z = linalg.fill ins(%cst : f32) outs(%e : tensor<256x64xf32>) -> tensor<256x64xf32>
  %p = linalg.matmul ins(%x, %w : tensor<256x32xf32>, tensor<32x64xf32>) outs(%z : tensor<256x64xf32>) -> tensor<256x64xf32>
  %y = kan.rational %p, %a, %b : tensor<256x64xf32>, tensor<4x6xf32>, tensor<4x4xf32>
  return %y : tensor<256x64xf32>
}

// -----

// The element-wise B-spline expansion is recomputed per row tile, but an
// element-wise producer of the weight is not fused (every tile would
// recompute all of it).
// CHECK-LABEL: func.func @weights_not_fused
// CHECK:         %[[WN:.*]] = linalg.generic {{.*}} ins(%arg1 : tensor<16x32x8xf32>)
// CHECK:         %[[WT:.*]] = linalg.transpose ins(%[[WN]]
// CHECK:         scf.forall
// CHECK:           linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel"]} ins(%{{.*}} : tensor<16x32xf32>)
// CHECK:           linalg.generic {{.*}} ins(%{{.*}}, %[[WT]] : tensor<16x32x8xf32>, tensor<32x8x16xf32>)
// CHECK:         return
func.func @weights_not_fused(%x: tensor<64x32xf32>, %w: tensor<16x32x8xf32>) -> tensor<64x16xf32> {
  %e = tensor.empty() : tensor<16x32x8xf32>
  %w2 = linalg.generic {indexing_maps = [affine_map<(o, i, k) -> (o, i, k)>, affine_map<(o, i, k) -> (o, i, k)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%w : tensor<16x32x8xf32>) outs(%e : tensor<16x32x8xf32>) {
  ^bb0(%v: f32, %o: f32):
    %n = arith.negf %v : f32
    linalg.yield %n : f32
  } -> tensor<16x32x8xf32>
  %y = kan.layer bspline %x, %w2 : tensor<64x32xf32>, tensor<16x32x8xf32> -> tensor<64x16xf32>
  return %y : tensor<64x16xf32>
}

// -----

// An activation that is also returned is computed once, outside the tiles.
// CHECK-LABEL: func.func @shared_activation
// CHECK:         %[[R:.*]] = kan.rational %arg0, %arg2, %arg3
// CHECK:         scf.forall
// CHECK-NOT:       kan.rational
// CHECK:           tensor.extract_slice %[[R]]
// CHECK:           linalg.matmul
// CHECK:         return %{{.*}}, %[[R]]
func.func @shared_activation(%x: tensor<64x32xf32>, %w: tensor<32x16xf32>, %a: tensor<1x6xf32>, %b: tensor<1x4xf32>) -> (tensor<64x16xf32>, tensor<64x32xf32>) {
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<64x16xf32>
  %z = linalg.fill ins(%cst : f32) outs(%e : tensor<64x16xf32>) -> tensor<64x16xf32>
  %r = kan.rational %x, %a, %b : tensor<64x32xf32>, tensor<1x6xf32>, tensor<1x4xf32>
  %p = linalg.matmul ins(%r, %w : tensor<64x32xf32>, tensor<32x16xf32>) outs(%z : tensor<64x16xf32>) -> tensor<64x16xf32>
  return %p, %r : tensor<64x16xf32>, tensor<64x32xf32>
}
