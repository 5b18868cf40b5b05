// A KAN block x -> rational -> matmul -> rational -> matmul scheduled by a
// transform-dialect script (the last matmul tiled over rows, the rest of the
// block fused into the loop through the kan ops' TilingInterface models),
// then compiled and run: the numbers match the float64 reference, for a row
// count that leaves a partial tile.

// RUN: split-file %s %t
// RUN: moka-opt %t/input.mlir --transform-preload-library=transform-library-paths=%t/schedule.mlir --transform-interpreter > %t/scheduled.mlir
// RUN: FileCheck %s --check-prefix=IR < %t/scheduled.mlir
// RUN: %python %S/Inputs/check_kan_block.py %t/scheduled.mlir --rows=100 --cin=64 --hidden=96 --cout=48 | FileCheck %s

// IR: scf.forall
// IR:   kan.rational
// IR:   linalg.matmul
// IR:   kan.rational
// IR:   linalg.matmul
// CHECK: PASS block

//--- input.mlir
func.func @block(%x: tensor<?x64xf32>, %a1: tensor<8x6xf32>, %b1: tensor<8x4xf32>, %w1: tensor<64x96xf32>, %a2: tensor<8x6xf32>, %b2: tensor<8x4xf32>, %w2: tensor<96x48xf32>) -> tensor<?x48xf32> {
  %cst = arith.constant 0.0 : f32
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?x64xf32>
  %r1 = kan.rational %x, %a1, %b1 : tensor<?x64xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  %e1 = tensor.empty(%n) : tensor<?x96xf32>
  %z1 = linalg.fill ins(%cst : f32) outs(%e1 : tensor<?x96xf32>) -> tensor<?x96xf32>
  %h = linalg.matmul ins(%r1, %w1 : tensor<?x64xf32>, tensor<64x96xf32>) outs(%z1 : tensor<?x96xf32>) -> tensor<?x96xf32>
  %r2 = kan.rational %h, %a2, %b2 : tensor<?x96xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  %e2 = tensor.empty(%n) : tensor<?x48xf32>
  %z2 = linalg.fill ins(%cst : f32) outs(%e2 : tensor<?x48xf32>) -> tensor<?x48xf32>
  %y = linalg.matmul ins(%r2, %w2 : tensor<?x96xf32>, tensor<96x48xf32>) outs(%z2 : tensor<?x48xf32>) -> tensor<?x48xf32>
  return %y : tensor<?x48xf32>
}

//--- schedule.mlir
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
