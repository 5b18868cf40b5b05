// kan.rational tiled by a transform-dialect schedule into tiles that cut
// through channel groups (the general tiled implementation, which looks the
// coefficients up per element), then compiled and run: same numbers as the
// float64 reference.

// RUN: split-file %s %t
// RUN: moka-opt %t/input.mlir --transform-preload-library=transform-library-paths=%t/schedule.mlir --transform-interpreter > %t/tiled.mlir
// RUN: FileCheck %s --check-prefix=IR < %t/tiled.mlir
// RUN: %python %S/Inputs/check_rational.py %t/tiled.mlir --function=tiles --shape=37x96 --groups=4 | FileCheck %s
// RUN: %python %S/Inputs/check_rational.py %t/tiled.mlir --function=tiles_shared --shape=37x96 --groups=3 --shared | FileCheck %s --check-prefix=SHARED

// IR: scf.forall
// IR: linalg.index 1
// IR-NOT: kan.rational %
// CHECK: PASS tiles
// SHARED: PASS tiles_shared

//--- input.mlir
func.func @tiles(%x: tensor<?x96xf32>, %a: tensor<4x6xf32>, %b: tensor<4x4xf32>) -> tensor<?x96xf32> {
  %y = kan.rational %x, %a, %b : tensor<?x96xf32>, tensor<4x6xf32>, tensor<4x4xf32>
  return %y : tensor<?x96xf32>
}
func.func @tiles_shared(%x: tensor<?x96xf32>, %a: tensor<1x6xf32>, %b: tensor<3x4xf32>) -> tensor<?x96xf32> {
  %y = kan.rational %x, %a, %b : tensor<?x96xf32>, tensor<1x6xf32>, tensor<3x4xf32>
  return %y : tensor<?x96xf32>
}

//--- schedule.mlir
module attributes {transform.with_named_sequence} {
  transform.named_sequence @__transform_main(%root: !transform.any_op {transform.readonly}) {
    %r = transform.structured.match ops{["kan.rational"]} in %root : (!transform.any_op) -> !transform.any_op
    %t, %l = transform.structured.tile_using_forall %r tile_sizes [8, 20] : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    transform.yield
  }
}
