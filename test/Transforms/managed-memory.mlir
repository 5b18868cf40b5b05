// RUN: moka-opt %s --pass-pipeline='builtin.module(func.func(moka-copy-globals))' | FileCheck %s --check-prefix=COPY
// RUN: moka-opt %s --pass-pipeline='builtin.module(func.func(moka-managed-memory))' | FileCheck %s --check-prefix=MANAGED

memref.global "private" constant @table : memref<4xf32> = dense<[1.0, 2.0, 3.0, 4.0]>

// Globals become copies in allocated buffers (kernels cannot read host
// globals); host allocations live in managed memory, freed on a stream.
// COPY-LABEL: func.func @f
// COPY: %[[G:.*]] = memref.get_global @table
// COPY: %[[B:.*]] = memref.alloc() : memref<4xf32>
// COPY: memref.copy %[[G]], %[[B]]
// COPY: return %[[B]]
// MANAGED-LABEL: func.func @f
// MANAGED: %[[A:.*]] = gpu.alloc host_shared (%{{.*}}) : memref<?xf32>
// MANAGED: %[[T0:.*]] = gpu.wait async
// MANAGED: %[[T1:.*]] = gpu.dealloc async [%[[T0]]] %[[A]]
// MANAGED: gpu.wait [%[[T1]]]
// MANAGED-NOT: memref.alloc(
func.func @f(%n: index) -> memref<4xf32> {
  %g = memref.get_global @table : memref<4xf32>
  %a = memref.alloc(%n) : memref<?xf32>
  memref.dealloc %a : memref<?xf32>
  return %g : memref<4xf32>
}
