// RUN: moka-opt %s | FileCheck %s
// RUN: moka-opt %s --mlir-print-op-generic | moka-opt | FileCheck %s
// RUN: moka-opt %s --verify-roundtrip

// CHECK-LABEL: func @routers
func.func @routers(%mix: tensor<?x8xf32>, %ds: tensor<?x256xbf16>, %b: tensor<256xf32>) {
  // CHECK: moe.route %{{.*}} {k = 2 : i64, normalize = true} : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  %w0, %e0 = moe.route %mix {k = 2 : i64, normalize = true} : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  // CHECK: moe.route %{{.*}} bias(%{{.*}} : tensor<256xf32>) {group_score = #moe<group_score top2_sum>, k = 8 : i64, n_group = 8 : i64, normalize = true, routed_scaling_factor = 2.500000e+00 : f64, scoring = #moe<scoring sigmoid>, topk_group = 4 : i64} : tensor<?x256xbf16> -> tensor<?x8xf32>, tensor<?x8xi32>
  %w1, %e1 = moe.route %ds bias(%b : tensor<256xf32>) {k = 8 : i64, scoring = #moe<scoring sigmoid>, n_group = 8 : i64, topk_group = 4 : i64, group_score = #moe<group_score top2_sum>, normalize = true, routed_scaling_factor = 2.5 : f64} : tensor<?x256xbf16> -> tensor<?x8xf32>, tensor<?x8xi32>
  return
}
