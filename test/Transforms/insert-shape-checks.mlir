// RUN: moka-opt %s --pass-pipeline='builtin.module(func.func(moka-insert-shape-checks))' | FileCheck %s

// Dynamic dimensions one loop indexes are compared at run time; static ones
// (checked by the verifier) are not.
// CHECK-LABEL: func.func @matmul
// CHECK: %[[C1:.*]] = arith.constant 1 : index
// CHECK: %[[K0:.*]] = tensor.dim %arg0, %[[C1]]
// CHECK: %[[C0:.*]] = arith.constant 0 : index
// CHECK: %[[K1:.*]] = tensor.dim %arg1, %[[C0]]
// CHECK: %[[EQ:.*]] = arith.cmpi eq, %[[K0]], %[[K1]]
// CHECK: cf.assert %[[EQ]], "shape mismatch: dimension 1 of operand #0 and dimension 0 of operand #1 of linalg.matmul must be equal
// CHECK: linalg.matmul
func.func @matmul(%a: tensor<8x?xf32>, %b: tensor<?x16xf32>,
                  %c: tensor<8x16xf32>) -> tensor<8x16xf32> {
  %r = linalg.matmul ins(%a, %b : tensor<8x?xf32>, tensor<?x16xf32>)
                     outs(%c : tensor<8x16xf32>) -> tensor<8x16xf32>
  return %r : tensor<8x16xf32>
}

// CHECK-LABEL: func.func @static
// CHECK-NOT: cf.assert
func.func @static(%a: tensor<8x4xf32>, %b: tensor<4x16xf32>,
                  %c: tensor<8x16xf32>) -> tensor<8x16xf32> {
  %r = linalg.matmul ins(%a, %b : tensor<8x4xf32>, tensor<4x16xf32>)
                     outs(%c : tensor<8x16xf32>) -> tensor<8x16xf32>
  return %r : tensor<8x16xf32>
}

// Operations inside loops work on tiles of checked operands: left alone.
// CHECK-LABEL: func.func @in_loop
// CHECK-NOT: cf.assert
func.func @in_loop(%a: tensor<?xf32>, %b: tensor<?xf32>) -> tensor<?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %r = scf.for %i = %c0 to %c2 step %c1 iter_args(%acc = %b) -> tensor<?xf32> {
    %s = linalg.add ins(%a, %acc : tensor<?xf32>, tensor<?xf32>)
                    outs(%acc : tensor<?xf32>) -> tensor<?xf32>
    scf.yield %s : tensor<?xf32>
  }
  return %r : tensor<?xf32>
}
