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

// CHECK-LABEL: func @mixtral_block
func.func @mixtral_block(%x: tensor<?x64xf32>, %logits: tensor<?x8xf32>, %w1: tensor<8x96x64xf32>, %w2: tensor<8x64x96xf32>, %w3: tensor<8x96x64xf32>, %sh: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %w, %i = moe.route %logits {k = 2 : i64, normalize = true} : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  // CHECK: moe.dispatch %{{.*}} {capacity_factor = 1.250000e+00 : f64, num_experts = 8 : i64} : tensor<?x2xi32> -> tensor<?xi32>, tensor<9xi32>, tensor<?x2xi32>
  %rows, %offsets, %slots = moe.dispatch %i {num_experts = 8 : i64, capacity_factor = 1.25 : f64} : tensor<?x2xi32> -> tensor<?xi32>, tensor<9xi32>, tensor<?x2xi32>
  // CHECK: moe.experts swiglu %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} up(%{{.*}} : tensor<8x96x64xf32>) : tensor<?x64xf32>, tensor<?xi32>, tensor<9xi32>, tensor<8x96x64xf32>, tensor<8x64x96xf32> -> tensor<?x64xf32>
  %y = moe.experts swiglu %x, %rows, %offsets, %w1, %w2 up(%w3 : tensor<8x96x64xf32>) : tensor<?x64xf32>, tensor<?xi32>, tensor<9xi32>, tensor<8x96x64xf32>, tensor<8x64x96xf32> -> tensor<?x64xf32>
  // CHECK: moe.experts gelu
  %g = moe.experts gelu %x, %rows, %offsets, %w1, %w2 : tensor<?x64xf32>, tensor<?xi32>, tensor<9xi32>, tensor<8x96x64xf32>, tensor<8x64x96xf32> -> tensor<?x64xf32>
  // CHECK: moe.combine %{{.*}}, %{{.*}}, %{{.*}} shared(%{{.*}} : tensor<?x64xf32>) : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  %out = moe.combine %y, %slots, %w shared(%sh : tensor<?x64xf32>) : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %out : tensor<?x64xf32>
}

// CHECK-LABEL: func @layers
func.func @layers(%x: tensor<?x16xbf16>, %g: tensor<4x16xbf16>, %w1: tensor<4x8x16xbf16>, %w2: tensor<4x16x8xbf16>, %s1: tensor<8x16xbf16>, %s2: tensor<16x8xbf16>, %sg: tensor<1x16xbf16>) -> tensor<?x16xf32> {
  // CHECK: moe.layer gelu %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} shared(%{{.*}}, %{{.*}} : tensor<8x16xbf16>, tensor<16x8xbf16>) shared_gate(%{{.*}} : tensor<1x16xbf16>) {capacity_factor = 1.000000e+00 : f64, k = 2 : i64}
  %y = moe.layer gelu %x, %g, %w1, %w2 shared(%s1, %s2 : tensor<8x16xbf16>, tensor<16x8xbf16>) shared_gate(%sg : tensor<1x16xbf16>) {k = 2 : i64, capacity_factor = 1.0 : f64} : tensor<?x16xbf16>, tensor<4x16xbf16>, tensor<4x8x16xbf16>, tensor<4x16x8xbf16> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// CHECK-LABEL: func @kan_experts
func.func @kan_experts(%x: tensor<?x32xf32>, %rows: tensor<?xi32>, %offsets: tensor<5xi32>, %w1: tensor<4x48x32xf32>, %w2: tensor<4x32x48xf32>, %a1: tensor<4x4x6xf32>, %b1: tensor<4x4x4xf32>, %a2: tensor<4x1x6xf32>, %b2: tensor<4x8x4xf32>) -> tensor<?x32xf32> {
  // CHECK: moe.experts kan %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} rationals(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<4x4x6xf32>, tensor<4x4x4xf32>, tensor<4x1x6xf32>, tensor<4x8x4xf32>)
  %y = moe.experts kan %x, %rows, %offsets, %w1, %w2 rationals(%a1, %b1, %a2, %b2 : tensor<4x4x6xf32>, tensor<4x4x4xf32>, tensor<4x1x6xf32>, tensor<4x8x4xf32>) : tensor<?x32xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x48x32xf32>, tensor<4x32x48xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}
