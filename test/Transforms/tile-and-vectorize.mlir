// RUN: moka-opt %s --pass-pipeline="builtin.module(func.func(moka-tile-and-vectorize{vector-size=16 min-parallel-size=1024}, canonicalize))" --split-input-file | FileCheck %s

// Large static op: rows distributed with scf.forall, 16-wide vector tiles,
// no masks.
// CHECK-LABEL: func.func @large_static
// CHECK:         scf.forall (%{{.*}}) in (64)
// CHECK:           scf.for %{{.*}} = %c0 to %c256 step %c16
// CHECK:             vector.transfer_read {{.*}} : tensor<1x16xf32>, vector<16xf32>
// CHECK-NOT:         vector.mask
// CHECK:             math.absf {{.*}} : vector<16xf32>
// CHECK:             vector.transfer_write
// CHECK-NOT:     linalg.generic
func.func @large_static(%x: tensor<64x256xf32>) -> tensor<64x256xf32> {
  %e = tensor.empty() : tensor<64x256xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<64x256xf32>) outs(%e : tensor<64x256xf32>) {
  ^bb0(%a: f32, %b: f32):
    %r = math.absf %a : f32
    linalg.yield %r : f32
  } -> tensor<64x256xf32>
  return %y : tensor<64x256xf32>
}

// -----

// Small static op: not distributed; an innermost extent below the vector
// size is taken whole.
// CHECK-LABEL: func.func @small_static
// CHECK-NOT:     scf.forall
// CHECK:         scf.for
// CHECK:           vector.transfer_read {{.*}} : tensor<1x6xf32>, vector<6xf32>
func.func @small_static(%x: tensor<8x6xf32>) -> tensor<8x6xf32> {
  %e = tensor.empty() : tensor<8x6xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<8x6xf32>) outs(%e : tensor<8x6xf32>) {
  ^bb0(%a: f32, %b: f32):
    %r = math.absf %a : f32
    linalg.yield %r : f32
  } -> tensor<8x6xf32>
  return %y : tensor<8x6xf32>
}

// -----

// Dynamic op: distributed, masked vectors.
// CHECK-LABEL: func.func @dynamic
// CHECK:         scf.forall
// CHECK:           vector.create_mask {{.*}} : vector<1x16xi1>
// CHECK:           vector.mask
func.func @dynamic(%x: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %d0 = tensor.dim %x, %c0 : tensor<?x?xf32>
  %d1 = tensor.dim %x, %c1 : tensor<?x?xf32>
  %e = tensor.empty(%d0, %d1) : tensor<?x?xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<?x?xf32>) outs(%e : tensor<?x?xf32>) {
  ^bb0(%a: f32, %b: f32):
    %r = math.absf %a : f32
    linalg.yield %r : f32
  } -> tensor<?x?xf32>
  return %y : tensor<?x?xf32>
}

// -----

// Reductions: the parallel loop is distributed, the reduction is cut into
// vector tiles carried by an scf.for and reduced with vector.multi_reduction.
// CHECK-LABEL: func.func @reduction
// CHECK:         scf.forall
// CHECK:           scf.for
// CHECK:             vector.transfer_read {{.*}} vector<16xf32>
// CHECK:             vector.multi_reduction <add>, {{.*}} [1] : vector<1x16xf32> to vector<1xf32>
// CHECK-NOT:     linalg.generic
func.func @reduction(%x: tensor<64x256xf32>, %init: tensor<64xf32>) -> tensor<64xf32> {
  %y = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i)>], iterator_types = ["parallel", "reduction"]} ins(%x : tensor<64x256xf32>) outs(%init : tensor<64xf32>) {
  ^bb0(%a: f32, %b: f32):
    %r = arith.addf %a, %b : f32
    linalg.yield %r : f32
  } -> tensor<64xf32>
  return %y : tensor<64xf32>
}
