// RUN: moka-opt %s --convert-moe-to-linalg --canonicalize --cse | FileCheck %s

// Mixtral's router: softmax as row max, exp, row sum and division generics;
// then one scf.forall over tokens making k = 2 passes over the 8 experts.
// CHECK-LABEL: func.func @mixtral
// CHECK:         linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]
// CHECK:           arith.maximumf
// CHECK:         math.exp
// CHECK:         linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]
// CHECK:           arith.addf
// CHECK:         arith.divf
// CHECK:         scf.forall (%[[T:.*]]) in (%{{.*}}) shared_outs({{.*}}) -> (tensor<?x2xf32>, tensor<?x2xi32>)
// CHECK:           scf.for %{{.*}} = %c0 to %c2
// CHECK:             scf.for %{{.*}} = %c0 to %c8
// CHECK:               arith.cmpf ogt
// CHECK:           arith.divf
// CHECK:           tensor.parallel_insert_slice
// CHECK:           tensor.parallel_insert_slice
// CHECK-NOT:     moe.route
func.func @mixtral(%l: tensor<?x8xf32>) -> (tensor<?x2xf32>, tensor<?x2xi32>) {
  %w, %e = moe.route %l {k = 2 : i64, normalize = true} : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  return %w, %e : tensor<?x2xf32>, tensor<?x2xi32>
}

// DeepSeek-V3's gate: sigmoid, bias added to the selection keys only, group
// keys as the sum of each group's two largest keys, the 4 best of 8 groups
// as a mask, then 8 passes over the 256 experts restricted to those groups.
// CHECK-LABEL: func.func @deepseek_v3
// CHECK:         %[[S:.*]] = linalg.generic {{.*}} ins(%arg0 : tensor<?x256xf32>)
// CHECK:           math.exp
// CHECK:         %[[K:.*]] = linalg.generic {{.*}} ins(%[[S]], %arg1 : tensor<?x256xf32>, tensor<256xf32>)
// CHECK:         scf.forall
// CHECK:           scf.for %{{.*}} = %c0 to %c8
// CHECK:             scf.for %{{.*}} = %c0 to %c32
// CHECK:               arith.maximumf
// CHECK:               arith.minimumf
// CHECK:           scf.for %{{.*}} = %c0 to %c4 {{.*}} -> (f32, index, tensor<8xi1>)
// CHECK:           scf.for %{{.*}} = %c0 to %c8 {{.*}} -> (f32, index, tensor<8xf32>, tensor<8xi32>, f32)
// CHECK:             scf.for %{{.*}} = %c0 to %c256
// CHECK:               tensor.extract %[[K]]
// CHECK:             tensor.extract %[[S]]
func.func @deepseek_v3(%l: tensor<?x256xf32>, %b: tensor<256xf32>) -> (tensor<?x8xf32>, tensor<?x8xi32>) {
  %w, %e = moe.route %l bias(%b : tensor<256xf32>) {k = 8 : i64, scoring = #moe<scoring sigmoid>, n_group = 8 : i64, topk_group = 4 : i64, group_score = #moe<group_score top2_sum>, normalize = true, routed_scaling_factor = 2.5 : f64} : tensor<?x256xf32> -> tensor<?x8xf32>, tensor<?x8xi32>
  return %w, %e : tensor<?x8xf32>, tensor<?x8xi32>
}
