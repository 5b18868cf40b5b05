// RUN: moka-opt %s --split-input-file --transform-interpreter --canonicalize --cse | FileCheck %s

// A KAN block x -> rational -> matmul -> rational -> matmul scheduled with
// the transform dialect: the last matmul is tiled over rows with
// scf.forall and the rest of the block is fused into the loop through the
// TilingInterface models of the kan ops.
// CHECK-LABEL: func.func @block
// CHECK:         scf.forall (%[[T:.*]]) in (4)
// CHECK:           %[[I:.*]] = affine.apply #{{.*}}(%[[T]])
// CHECK:           %[[X:.*]] = tensor.extract_slice %arg0[%[[I]], 0] [32, 64] [1, 1]
// CHECK:           %[[A1:.*]] = kan.rational %[[X]], %arg1, %arg2 : tensor<32x64xf32>
// CHECK:           %[[H:.*]] = linalg.matmul ins(%[[A1]], %arg3 : tensor<32x64xf32>, tensor<64x96xf32>)
// CHECK:           %[[A2:.*]] = kan.rational %[[H]], %arg4, %arg5 : tensor<32x96xf32>
// CHECK:           %[[Y:.*]] = linalg.matmul ins(%[[A2]], %arg6 : tensor<32x96xf32>, tensor<96x64xf32>)
// CHECK:           tensor.parallel_insert_slice %[[Y]]
// CHECK-NOT:     kan.rational %
// CHECK-NOT:     linalg.matmul ins
// CHECK:         return
func.func @block(%x: tensor<128x64xf32>, %a1: tensor<8x6xf32>, %b1: tensor<8x4xf32>, %w1: tensor<64x96xf32>, %a2: tensor<8x6xf32>, %b2: tensor<8x4xf32>, %w2: tensor<96x64xf32>) -> tensor<128x64xf32> {
  %cst = arith.constant 0.0 : f32
  %r1 = kan.rational %x, %a1, %b1 : tensor<128x64xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  %e1 = tensor.empty() : tensor<128x96xf32>
  %z1 = linalg.fill ins(%cst : f32) outs(%e1 : tensor<128x96xf32>) -> tensor<128x96xf32>
  %h = linalg.matmul ins(%r1, %w1 : tensor<128x64xf32>, tensor<64x96xf32>) outs(%z1 : tensor<128x96xf32>) -> tensor<128x96xf32>
  %r2 = kan.rational %h, %a2, %b2 : tensor<128x96xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  %e2 = tensor.empty() : tensor<128x64xf32>
  %z2 = linalg.fill ins(%cst : f32) outs(%e2 : tensor<128x64xf32>) -> tensor<128x64xf32>
  %y = linalg.matmul ins(%r2, %w2 : tensor<128x96xf32>, tensor<96x64xf32>) outs(%z2 : tensor<128x64xf32>) -> tensor<128x64xf32>
  return %y : tensor<128x64xf32>
}

module attributes {transform.with_named_sequence} {
  transform.named_sequence @__transform_main(%root: !transform.any_op {transform.readonly}) {
    %mms = transform.structured.match ops{["linalg.matmul"]} in %root : (!transform.any_op) -> !transform.any_op
    %mm1, %mm2 = transform.split_handle %mms : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    %rs = transform.structured.match ops{["kan.rational"]} in %root : (!transform.any_op) -> !transform.any_op
    %r1, %r2 = transform.split_handle %rs : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    %fills = transform.structured.match ops{["linalg.fill"]} in %root : (!transform.any_op) -> !transform.any_op
    %f1, %f2 = transform.split_handle %fills : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    %tiled, %loop = transform.structured.tile_using_forall %mm2 tile_sizes [32, 0] : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    %a, %l1 = transform.structured.fuse_into_containing_op %f2 into %loop : (!transform.any_op, !transform.any_op) -> (!transform.any_op, !transform.any_op)
    %b, %l2 = transform.structured.fuse_into_containing_op %r2 into %l1 : (!transform.any_op, !transform.any_op) -> (!transform.any_op, !transform.any_op)
    %c, %l3 = transform.structured.fuse_into_containing_op %mm1 into %l2 : (!transform.any_op, !transform.any_op) -> (!transform.any_op, !transform.any_op)
    %d, %l4 = transform.structured.fuse_into_containing_op %f1 into %l3 : (!transform.any_op, !transform.any_op) -> (!transform.any_op, !transform.any_op)
    %e, %l5 = transform.structured.fuse_into_containing_op %r1 into %l4 : (!transform.any_op, !transform.any_op) -> (!transform.any_op, !transform.any_op)
    transform.yield
  }
}

// -----

// Tiles that cut through the channels: each element looks its group's
// coefficients up from the channel offset of its tile.
// CHECK-LABEL: func.func @channel_tiles
// CHECK:         scf.forall (%[[T0:.*]], %[[T1:.*]]) in (2, 4)
// CHECK:           %[[J:.*]] = affine.apply #{{.*}}(%[[T1]])
// CHECK:           linalg.generic
// CHECK:             %[[C:.*]] = linalg.index 1
// CHECK:             %[[CG:.*]] = arith.addi %[[C]], %[[J]]
// CHECK:             %[[G:.*]] = arith.divui %[[CG]], %{{.*}}
// CHECK:             tensor.extract %arg1[%[[G]], %{{.*}}]
// CHECK:             math.absf
// CHECK:             arith.divf
// CHECK-NOT:     kan.rational %
// CHECK:         return
func.func @channel_tiles(%x: tensor<16x96xf32>, %a: tensor<4x6xf32>, %b: tensor<4x4xf32>) -> tensor<16x96xf32> {
  %y = kan.rational %x, %a, %b : tensor<16x96xf32>, tensor<4x6xf32>, tensor<4x4xf32>
  return %y : tensor<16x96xf32>
}

module attributes {transform.with_named_sequence} {
  transform.named_sequence @__transform_main(%root: !transform.any_op {transform.readonly}) {
    %r = transform.structured.match ops{["kan.rational"]} in %root : (!transform.any_op) -> !transform.any_op
    %t, %l = transform.structured.tile_using_forall %r tile_sizes [8, 24] : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    transform.yield
  }
}

// -----

// kan.layer tiles over rows and output channels; each tile reads its rows of
// the input and its output channels of the weights and bias.
// CHECK-LABEL: func.func @layer_tiles
// CHECK:         scf.forall (%[[T0:.*]], %[[T1:.*]]) in (4, 3)
// CHECK:           %[[I:.*]] = affine.apply #{{.*}}(%[[T0]])
// CHECK:           %[[O:.*]] = affine.apply #{{.*}}(%[[T1]])
// CHECK:           %[[X:.*]] = tensor.extract_slice %arg0[%[[I]], 0] [16, 32] [1, 1]
// CHECK:           %[[W:.*]] = tensor.extract_slice %arg1[%[[O]], 0, 0] [16, 32, 8] [1, 1, 1]
// CHECK:           %[[B:.*]] = tensor.extract_slice %arg2[%[[O]]] [16] [1]
// CHECK:           %[[WB:.*]] = tensor.extract_slice %arg3[%[[O]], 0] [16, 32] [1, 1]
// CHECK:           kan.layer rbf %[[X]], %[[W]] bias(%[[B]] : tensor<16xf32>) base(%[[WB]] : tensor<16x32xf32>) : tensor<16x32xf32>, tensor<16x32x8xf32> -> tensor<16x16xf32>
func.func @layer_tiles(%x: tensor<64x32xf32>, %w: tensor<48x32x8xf32>, %bias: tensor<48xf32>, %wb: tensor<48x32xf32>) -> tensor<64x48xf32> {
  %y = kan.layer rbf %x, %w bias(%bias : tensor<48xf32>) base(%wb : tensor<48x32xf32>) : tensor<64x32xf32>, tensor<48x32x8xf32> -> tensor<64x48xf32>
  return %y : tensor<64x48xf32>
}

module attributes {transform.with_named_sequence} {
  transform.named_sequence @__transform_main(%root: !transform.any_op {transform.readonly}) {
    %r = transform.structured.match ops{["kan.layer"]} in %root : (!transform.any_op) -> !transform.any_op
    %t, %l = transform.structured.tile_using_forall %r tile_sizes [16, 16] : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    transform.yield
  }
}
