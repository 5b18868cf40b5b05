// RUN: moka-opt %s --pass-pipeline='builtin.module(func.func(moka-use-managed-memory))' | FileCheck %s

// Host allocations live in managed memory, freed on a stream that is
// waited for; allocations inside kernels are left alone.
// CHECK-LABEL: func.func @f
// CHECK: %[[A:.*]] = gpu.alloc host_shared (%{{.*}}) : memref<?xf32>
// CHECK: %[[T0:.*]] = gpu.wait async
// CHECK: %[[T1:.*]] = gpu.dealloc async [%[[T0]]] %[[A]]
// CHECK: gpu.wait [%[[T1]]]
// CHECK: gpu.launch
// CHECK: memref.alloca
// CHECK-NOT: memref.alloc(
func.func @f(%n: index) {
  %a = memref.alloc(%n) : memref<?xf32>
  memref.dealloc %a : memref<?xf32>
  %c1 = arith.constant 1 : index
  gpu.launch blocks(%bx, %by, %bz) in (%x = %c1, %y = %c1, %z = %c1)
             threads(%tx, %ty, %tz) in (%u = %c1, %v = %c1, %w = %c1) {
    %s = memref.alloca() : memref<4xf32>
    gpu.terminator
  }
  return
}
