// RUN: moka-opt %s --convert-moe-to-linalg --canonicalize --cse | FileCheck %s

// Dispatch: counting sort in two sequential passes over (token, slot) and a
// prefix sum over the experts; expert indices checked at run time; the
// capacity compared in the first pass.
// CHECK-LABEL: func.func @dispatch
// CHECK:         math.ceil
// CHECK:         scf.for
// CHECK:           scf.for
// CHECK:             cf.assert {{.*}} "moe.dispatch: expert index out of range [0, num_experts)"
// CHECK:             arith.cmpi ult
// CHECK:         scf.for %{{.*}} = %c0 to %c8
// CHECK:         scf.for
// CHECK:           scf.for
// CHECK:             scf.if
// CHECK-NOT:     moe.dispatch
func.func @dispatch(%i: tensor<?x2xi32>) -> (tensor<?xi32>, tensor<9xi32>, tensor<?x2xi32>) {
  %rows, %offsets, %slots = moe.dispatch %i {num_experts = 8 : i64, capacity_factor = 1.25 : f64} : tensor<?x2xi32> -> tensor<?xi32>, tensor<9xi32>, tensor<?x2xi32>
  return %rows, %offsets, %slots : tensor<?xi32>, tensor<9xi32>, tensor<?x2xi32>
}

// Experts: the form is chosen at run time from the number of rows. Few
// rows per expert (here <= 8 * 8): the weight stacks read in place, each
// product as 16-lane partial sums over (output, row, block) then a
// reduction over the lanes. Otherwise: the stacks transposed once and
// outer-product contractions. In both, one scf.forall over the 8 experts
// gathers each segment's rows of x as it reads them.
// CHECK-LABEL: func.func @experts
// CHECK:         %[[N:.*]] = tensor.dim %arg1
// CHECK:         %[[SMALL:.*]] = arith.cmpi ule, %[[N]], %c64
// CHECK:         scf.if %[[SMALL]]
// CHECK-NOT:       linalg.transpose
// CHECK:           scf.forall (%{{.*}}) in (8)
// CHECK:             tensor.extract %arg0
// CHECK:             tensor.expand_shape {{.*}} output_shape [96, 4, 16]
// CHECK:             linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction", "parallel"]
// CHECK:             linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]
// CHECK:             math.exp
// CHECK:             tensor.parallel_insert_slice
// CHECK:         } else {
// CHECK:           linalg.transpose ins(%arg3 : tensor<8x96x64xf32>) {{.*}} permutation = [0, 2, 1]
// CHECK:           linalg.transpose ins(%arg5 : tensor<8x96x64xf32>)
// CHECK:           linalg.transpose ins(%arg4 : tensor<8x64x96xf32>)
// CHECK:           scf.forall (%{{.*}}) in (8)
// CHECK:             tensor.extract %arg0
// CHECK:             linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]
// CHECK:             tensor.parallel_insert_slice
func.func @experts(%x: tensor<?x64xf32>, %rows: tensor<?xi32>, %offsets: tensor<9xi32>, %w1: tensor<8x96x64xf32>, %w2: tensor<8x64x96xf32>, %w3: tensor<8x96x64xf32>) -> tensor<?x64xf32> {
  %y = moe.experts swiglu %x, %rows, %offsets, %w1, %w2 up(%w3 : tensor<8x96x64xf32>) : tensor<?x64xf32>, tensor<?xi32>, tensor<9xi32>, tensor<8x96x64xf32>, tensor<8x64x96xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// Combine: one generic over (token, channel) reducing over the slots; a
// dropped slot (-1) adds nothing.
// CHECK-LABEL: func.func @combine
// CHECK:         linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%arg1, %arg2 : tensor<?x2xi32>, tensor<?x2xf32>)
// CHECK:           arith.cmpi sge
// CHECK:           tensor.extract %arg0
// CHECK:           arith.select
func.func @combine(%y: tensor<?x64xf32>, %slots: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> tensor<?x64xf32> {
  %out = moe.combine %y, %slots, %w : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %out : tensor<?x64xf32>
}
