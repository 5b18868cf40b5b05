// RUN: moka-opt %s --pass-pipeline='builtin.module(func.func(moka-copy-globals))' | FileCheck %s

memref.global "private" constant @table : memref<4xf32> = dense<[1.0, 2.0, 3.0, 4.0]>

// Globals become copies in allocated buffers (kernels cannot read host
// globals); the copy is what the function uses and returns.
// CHECK-LABEL: func.func @f
// CHECK: %[[G:.*]] = memref.get_global @table
// CHECK: %[[B:.*]] = memref.alloc() : memref<4xf32>
// CHECK: memref.copy %[[G]], %[[B]]
// CHECK: return %[[B]]
func.func @f() -> memref<4xf32> {
  %g = memref.get_global @table : memref<4xf32>
  return %g : memref<4xf32>
}
