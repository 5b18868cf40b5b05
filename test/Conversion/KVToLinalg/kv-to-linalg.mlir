// RUN: moka-opt %s --convert-kv-to-linalg | FileCheck %s

!Q = !kv.cache<1x2x256x16, i4, key_group = 8, value_group = 8, window = 32>

// A cache argument and result become the nine storage tensors.
// CHECK-LABEL: func.func @step
// CHECK-SAME: (%[[KC:.*]]: tensor<1x2x256x8xi8>, %[[KS:.*]]: tensor<1x2x32x16xf32>, %[[KM:.*]]: tensor<1x2x32x16xf32>, %[[VC:.*]]: tensor<1x2x256x8xi8>, %[[VS:.*]]: tensor<1x2x256x2xf32>, %[[VM:.*]]: tensor<1x2x256x2xf32>, %[[WK:.*]]: tensor<1x2x32x16xf32>, %[[WV:.*]]: tensor<1x2x32x16xf32>, %[[LEN:.*]]: tensor<i64>, %{{.*}}: tensor<1x2x?x16xf32>, %{{.*}}: tensor<1x2x?x16xf32>)
// CHECK-SAME: -> (tensor<1x2x256x8xi8>, tensor<1x2x32x16xf32>, tensor<1x2x32x16xf32>, tensor<1x2x256x8xi8>, tensor<1x2x256x2xf32>, tensor<1x2x256x2xf32>, tensor<1x2x32x16xf32>, tensor<1x2x32x16xf32>, tensor<i64>)
// The capacity check, then per-group statistics (min/max reductions),
// codes rounded to nearest even, packed two to a byte.
// CHECK: cf.assert %{{.*}}, "kv.append: the tokens do not fit in the cache's capacity"
// CHECK: arith.minimumf
// CHECK: arith.maximumf
// CHECK: math.roundeven
// CHECK: arith.shli
// CHECK: tensor.insert_slice
// CHECK: return
// CHECK-NOT: kv.
func.func @step(%c: !Q, %k: tensor<1x2x?x16xf32>, %v: tensor<1x2x?x16xf32>) -> !Q {
  %c1 = kv.append %c, %k, %v : !Q, tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>
  return %c1 : !Q
}

// Attention dequantizes in the contraction body: packed codes indexed by
// channel floordiv 2, group statistics by token floordiv G_t.
// CHECK-LABEL: func.func @attend
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]
// CHECK: arith.shrui
// CHECK: arith.uitofp
// CHECK: math.exp
// CHECK: arith.select
// CHECK: tensor.collapse_shape {{.*}} tensor<1x2x2x16xf32> into tensor<1x4x16xf32>
func.func @attend(%q: tensor<1x4x16xf32>, %c: !Q) -> tensor<1x4x16xf32> {
  %o = kv.decode_attention %q, %c : tensor<1x4x16xf32>, !Q -> tensor<1x4x16xf32>
  return %o : tensor<1x4x16xf32>
}

// Calls pass the storage along.
// CHECK-LABEL: func.func @caller
// CHECK: %[[R:.*]]:9 = call @step(
// CHECK: return %[[R]]#0, %[[R]]#1, %[[R]]#2, %[[R]]#3, %[[R]]#4, %[[R]]#5, %[[R]]#6, %[[R]]#7, %[[R]]#8
func.func @caller(%c: !Q, %k: tensor<1x2x?x16xf32>, %v: tensor<1x2x?x16xf32>) -> !Q {
  %r = call @step(%c, %k, %v) : (!Q, tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>) -> !Q
  return %r : !Q
}

// An empty float cache: zero storage, length 0.
// CHECK-LABEL: func.func @empty
// CHECK-SAME: -> (tensor<1x2x64x8xf16>, tensor<1x2x64x8xf16>, tensor<i64>)
// CHECK: linalg.fill
func.func @empty() -> !kv.cache<1x2x64x8, f16> {
  %c = kv.empty : !kv.cache<1x2x64x8, f16>
  return %c : !kv.cache<1x2x64x8, f16>
}
