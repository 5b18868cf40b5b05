// RUN: moka-opt %s --moka-lower-dynamic-expand-shape | FileCheck %s

// Two dynamic sizes in one group: sizes from output_shape, strides built
// outward from the group's source stride.
// CHECK-LABEL: func.func @two_dynamic
// CHECK-SAME: (%[[SRC:.*]]: memref<?x8xf32>, %[[A:.*]]: index, %[[B:.*]]: index)
// CHECK: %[[C8:.*]] = arith.constant 8 : index
// CHECK: %[[BASE:.*]], %{{.*}}, %{{.*}}:2, %{{.*}}:2 = memref.extract_strided_metadata %[[SRC]]
// CHECK: %[[S0:.*]] = arith.muli %[[B]], %[[C8]]
// CHECK: memref.reinterpret_cast %[[BASE]] to offset: [0], sizes: [%[[A]], %[[B]], 8], strides: [%[[S0]], 8, 1]
// CHECK-NOT: memref.expand_shape
func.func @two_dynamic(%m: memref<?x8xf32>, %a: index, %b: index) -> memref<?x?x8xf32> {
  %r = memref.expand_shape %m [[0, 1], [2]] output_shape [%a, %b, 8]
      : memref<?x8xf32> into memref<?x?x8xf32>
  return %r : memref<?x?x8xf32>
}

// One dynamic size per group: left to expand-strided-metadata.
// CHECK-LABEL: func.func @one_dynamic
// CHECK: memref.expand_shape
func.func @one_dynamic(%m: memref<?x8xf32>, %a: index) -> memref<?x4x8xf32> {
  %r = memref.expand_shape %m [[0, 1], [2]] output_shape [%a, 4, 8]
      : memref<?x8xf32> into memref<?x4x8xf32>
  return %r : memref<?x4x8xf32>
}
