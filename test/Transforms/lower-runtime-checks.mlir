// RUN: moka-opt %s --moka-lower-runtime-checks | FileCheck %s

// CHECK: llvm.func @mokaCheckFailed(!llvm.ptr)
// CHECK: llvm.mlir.global private constant @__moka_check_message_0("sizes differ\00")
// CHECK-NOT: llvm.mlir.global
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
