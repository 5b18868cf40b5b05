// RUN: moka-opt %s -split-input-file -verify-diagnostics

// Every verifier message of moe.route.

func.func @rank(%l: tensor<4x8x2xf32>) {
  // expected-error @+1 {{'moe.route' op logits must be [T, E], got 'tensor<4x8x2xf32>'}}
  %w, %e = moe.route %l {k = 2 : i64} : tensor<4x8x2xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @dynamic_e(%l: tensor<4x?xf32>) {
  // expected-error @+1 {{'moe.route' op the number of experts E must be static, got 'tensor<4x?xf32>'}}
  %w, %e = moe.route %l {k = 2 : i64} : tensor<4x?xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @no_experts(%l: tensor<4x0xf32>) {
  // expected-error @+1 {{'moe.route' op needs at least one expert, got E = 0}}
  %w, %e = moe.route %l {k = 1 : i64} : tensor<4x0xf32> -> tensor<4x1xf32>, tensor<4x1xi32>
  return
}

// -----

func.func @k_zero(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.route' op k must be >= 1, got 0}}
  %w, %e = moe.route %l {k = 0 : i64} : tensor<4x8xf32> -> tensor<4x0xf32>, tensor<4x0xi32>
  return
}

// -----

func.func @k_above_e(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.route' op k = 9 exceeds the number of experts E = 8}}
  %w, %e = moe.route %l {k = 9 : i64} : tensor<4x8xf32> -> tensor<4x9xf32>, tensor<4x9xi32>
  return
}

// -----

func.func @groups_zero(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.route' op n_group must be >= 1, got 0}}
  %w, %e = moe.route %l {k = 2 : i64, n_group = 0 : i64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @groups_divide(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.route' op n_group = 3 does not divide the number of experts E = 8}}
  %w, %e = moe.route %l {k = 2 : i64, n_group = 3 : i64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @topk_group_above(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.route' op topk_group must be in [1, n_group = 4], got 5}}
  %w, %e = moe.route %l {k = 2 : i64, n_group = 4 : i64, topk_group = 5 : i64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @topk_group_zero(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.route' op topk_group must be in [1, n_group = 4], got 0}}
  %w, %e = moe.route %l {k = 2 : i64, n_group = 4 : i64, topk_group = 0 : i64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @too_few_left(%l: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.route' op k = 5 exceeds the 4 experts left by topk_group = 2 groups of 2}}
  %w, %e = moe.route %l {k = 5 : i64, n_group = 8 : i64, topk_group = 2 : i64} : tensor<4x16xf32> -> tensor<4x5xf32>, tensor<4x5xi32>
  return
}

// -----

func.func @top2_single(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.route' op group_score top2_sum needs at least 2 experts per group, got 1}}
  %w, %e = moe.route %l {k = 2 : i64, n_group = 8 : i64, topk_group = 4 : i64, group_score = #moe<group_score top2_sum>} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @scale_zero(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.route' op routed_scaling_factor must be finite and > 0, got 0.000000e+00}}
  %w, %e = moe.route %l {k = 2 : i64, routed_scaling_factor = 0.0 : f64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @bias_shape(%l: tensor<4x8xf32>, %b: tensor<7xf32>) {
  // expected-error @+1 {{'moe.route' op bias must be [E] = [8], got 'tensor<7xf32>'}}
  %w, %e = moe.route %l bias(%b : tensor<7xf32>) {k = 2 : i64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @weights_shape(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.route' op weights must be [T, k] = [4, 2], got 'tensor<4x3xf32>'}}
  %w, %e = moe.route %l {k = 2 : i64} : tensor<4x8xf32> -> tensor<4x3xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @experts_rows(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.route' op experts must be [T, k] = [4, 2], got 'tensor<5x2xi32>'}}
  %w, %e = moe.route %l {k = 2 : i64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<5x2xi32>
  return
}

// -----

func.func @experts_type(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.route' op result #1 must be ranked tensor of 32-bit signless integer values}}
  %w, %e = moe.route %l {k = 2 : i64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi64>
  return
}
