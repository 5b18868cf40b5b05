// RUN: moka-opt %s --moe-decompose-layers --canonicalize | FileCheck %s

// moe.layer becomes the gate product over the transposed router weight,
// then route, dispatch, experts, shared experts and combine, each with the
// layer's attributes.
// CHECK-LABEL: func.func @deepseek_like
// CHECK:         %[[GT:.*]] = linalg.transpose ins(%arg1 : tensor<16x32xf32>) outs(%{{.*}} : tensor<32x16xf32>) permutation = [1, 0]
// CHECK:         %[[L:.*]] = linalg.generic {{.*}} ins(%arg0, %[[GT]] : tensor<?x32xf32>, tensor<32x16xf32>)
// CHECK:         %[[W:.*]], %[[I:.*]] = moe.route %[[L]] bias(%arg5 : tensor<16xf32>) {group_score = #moe<group_score top2_sum>, k = 4 : i64, n_group = 4 : i64, normalize = true, routed_scaling_factor = 2.500000e+00 : f64, scoring = #moe<scoring sigmoid>, topk_group = 2 : i64}
// CHECK:         %[[R:.*]], %[[O:.*]], %[[S:.*]] = moe.dispatch %[[I]] {capacity_factor = 1.500000e+00 : f64, num_experts = 16 : i64}
// CHECK:         %[[Y:.*]] = moe.experts swiglu %arg0, %[[R]], %[[O]], %arg2, %arg3 up(%arg4 : tensor<16x24x32xf32>)
// CHECK:         %[[SH:.*]] = moe.shared_experts swiglu %arg0, %arg6, %arg7 up(%arg8 : tensor<40x32xf32>)
// CHECK:         moe.combine %[[Y]], %[[S]], %[[W]] shared(%[[SH]] : tensor<?x32xf32>)
// CHECK-NOT:     moe.layer
func.func @deepseek_like(%x: tensor<?x32xf32>, %g: tensor<16x32xf32>, %w1: tensor<16x24x32xf32>, %w2: tensor<16x32x24xf32>, %w3: tensor<16x24x32xf32>, %b: tensor<16xf32>, %s1: tensor<40x32xf32>, %s2: tensor<32x40xf32>, %s3: tensor<40x32xf32>) -> tensor<?x32xf32> {
  %y = moe.layer swiglu %x, %g, %w1, %w2 up(%w3 : tensor<16x24x32xf32>) bias(%b : tensor<16xf32>) shared(%s1, %s2 : tensor<40x32xf32>, tensor<32x40xf32>) shared_up(%s3 : tensor<40x32xf32>) {k = 4 : i64, scoring = #moe<scoring sigmoid>, n_group = 4 : i64, topk_group = 2 : i64, group_score = #moe<group_score top2_sum>, normalize = true, routed_scaling_factor = 2.5 : f64, capacity_factor = 1.5 : f64} : tensor<?x32xf32>, tensor<16x32xf32>, tensor<16x24x32xf32>, tensor<16x32x24xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}
