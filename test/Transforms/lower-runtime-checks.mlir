// RUN: moka-opt %s --moka-lower-runtime-checks | FileCheck %s

// CHECK: llvm.func @mokaCheckFailed(!llvm.ptr)
// CHECK: llvm.mlir.global private constant @__moka_check_message_0("sizes differ\00")
// CHECK-NOT: "sizes differ
// CHECK-LABEL: func.func @check
// CHECK: %[[TRUE:.*]] = arith.constant true
// CHECK: %[[FAILED:.*]] = arith.xori %arg0, %[[TRUE]]
// CHECK: scf.if %[[FAILED]] {
// CHECK:   %[[MSG:.*]] = llvm.mlir.addressof @__moka_check_message_0
// CHECK:   llvm.call @mokaCheckFailed(%[[MSG]])
// CHECK-NOT: cf.assert
func.func @check(%ok: i1, %again: i1) {
  cf.assert %ok, "sizes differ"
  cf.assert %again, "sizes differ"
  return
}

// A check in a parallel loop that depends only on values from outside it
// (a shape check of a fused tile) moves in front of the loop, with the pure
// ops computing its condition, and reports to the caller.
// CHECK-LABEL: func.func @hoisted
// CHECK:       %[[DIM:.*]] = memref.dim %arg0, %c1
// CHECK:       %[[REM:.*]] = arith.remui %[[DIM]], %c8
// CHECK:       %[[OK:.*]] = arith.cmpi eq, %[[REM]], %c0
// CHECK:       scf.if
// CHECK:         llvm.call @mokaCheckFailed
// CHECK:       scf.forall
// CHECK-NOT:     mokaCheckFailed
// CHECK-NOT:     cf.assert
// CHECK:       return
func.func @hoisted(%m: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %n = memref.dim %m, %c0 : memref<?x?xf32>
  scf.forall (%i) in (%n) {
    %d = memref.dim %m, %c1 : memref<?x?xf32>
    %r = arith.remui %d, %c8 : index
    %ok = arith.cmpi eq, %r, %c0 : index
    cf.assert %ok, "groups do not divide the channels"
  }
  return
}

// A check that depends on the iteration stays in the loop as an assert (a
// worker thread cannot unwind to the caller).
// CHECK-LABEL: func.func @per_iteration
// CHECK:       scf.forall
// CHECK:         arith.cmpi ult, %{{.*}}, %arg1
// CHECK:         cf.assert {{.*}} "index out of range"
func.func @per_iteration(%m: memref<?xindex>, %bound: index) {
  %c0 = arith.constant 0 : index
  %n = memref.dim %m, %c0 : memref<?xindex>
  scf.forall (%i) in (%n) {
    %v = memref.load %m[%i] : memref<?xindex>
    %ok = arith.cmpi ult, %v, %bound : index
    cf.assert %ok, "index out of range"
  }
  return
}
