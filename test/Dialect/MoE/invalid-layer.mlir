// RUN: moka-opt %s -split-input-file -verify-diagnostics

// Verifier messages of moe.shared_experts and moe.layer (the routing,
// capacity and expert-stack checks are the same code as moe.route's,
// moe.dispatch's and moe.experts').

func.func @s_rank(%x: tensor<16xf32>, %a: tensor<8x16xf32>, %b: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.shared_experts' op input must be [T, d], got 'tensor<16xf32>'}}
  %y = moe.shared_experts gelu %x, %a, %b : tensor<16xf32>, tensor<8x16xf32>, tensor<16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @s_w1(%x: tensor<?x16xf32>, %a: tensor<8x15xf32>, %b: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.shared_experts' op shared w1 must be [f, d] with d = 16 (the input's), got 'tensor<8x15xf32>'}}
  %y = moe.shared_experts gelu %x, %a, %b : tensor<?x16xf32>, tensor<8x15xf32>, tensor<16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @s_w2(%x: tensor<?x16xf32>, %a: tensor<8x16xf32>, %b: tensor<16x7xf32>) {
  // expected-error @+1 {{'moe.shared_experts' op shared w2 must be [d, f] = [16, 8], got 'tensor<16x7xf32>'}}
  %y = moe.shared_experts gelu %x, %a, %b : tensor<?x16xf32>, tensor<8x16xf32>, tensor<16x7xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @s_noup(%x: tensor<?x16xf32>, %a: tensor<8x16xf32>, %b: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.shared_experts' op swiglu shared experts need their up projection}}
  %y = moe.shared_experts swiglu %x, %a, %b : tensor<?x16xf32>, tensor<8x16xf32>, tensor<16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @s_up(%x: tensor<?x16xf32>, %a: tensor<8x16xf32>, %b: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.shared_experts' op only swiglu shared experts take an up projection}}
  %y = moe.shared_experts gelu %x, %a, %b up(%a : tensor<8x16xf32>) : tensor<?x16xf32>, tensor<8x16xf32>, tensor<16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @s_gate(%x: tensor<?x16xf32>, %a: tensor<8x16xf32>, %b: tensor<16x8xf32>, %g: tensor<2x16xf32>) {
  // expected-error @+1 {{'moe.shared_experts' op shared gate must be [1, d] = [1, 16], got 'tensor<2x16xf32>'}}
  %y = moe.shared_experts gelu %x, %a, %b gate(%g : tensor<2x16xf32>) : tensor<?x16xf32>, tensor<8x16xf32>, tensor<16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @s_result(%x: tensor<?x16xf32>, %a: tensor<8x16xf32>, %b: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.shared_experts' op result must be [T, d] = [?, 16], got 'tensor<?x15xf32>'}}
  %y = moe.shared_experts gelu %x, %a, %b : tensor<?x16xf32>, tensor<8x16xf32>, tensor<16x8xf32> -> tensor<?x15xf32>
  return
}

// -----

func.func @l_rank(%x: tensor<16xf32>, %g: tensor<4x16xf32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>) {
  // expected-error @+1 {{'moe.layer' op input must be [T, d], got 'tensor<16xf32>'}}
  %y = moe.layer gelu %x, %g, %w1, %w2 {k = 2 : i64} : tensor<16xf32>, tensor<4x16xf32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @l_gate(%x: tensor<?x16xf32>, %g: tensor<4x15xf32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>) {
  // expected-error @+1 {{'moe.layer' op gate must be [E, d] with a static E and d = 16, got 'tensor<4x15xf32>'}}
  %y = moe.layer gelu %x, %g, %w1, %w2 {k = 2 : i64} : tensor<?x16xf32>, tensor<4x15xf32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @l_k(%x: tensor<?x16xf32>, %g: tensor<4x16xf32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>) {
  // expected-error @+1 {{'moe.layer' op k = 5 exceeds the number of experts E = 4}}
  %y = moe.layer gelu %x, %g, %w1, %w2 {k = 5 : i64} : tensor<?x16xf32>, tensor<4x16xf32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @l_groups(%x: tensor<?x16xf32>, %g: tensor<4x16xf32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>) {
  // expected-error @+1 {{'moe.layer' op n_group = 3 does not divide the number of experts E = 4}}
  %y = moe.layer gelu %x, %g, %w1, %w2 {k = 2 : i64, n_group = 3 : i64} : tensor<?x16xf32>, tensor<4x16xf32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @l_cap(%x: tensor<?x16xf32>, %g: tensor<4x16xf32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>) {
  // expected-error @+1 {{'moe.layer' op capacity_factor must be finite and > 0, got 0.000000e+00}}
  %y = moe.layer gelu %x, %g, %w1, %w2 {k = 2 : i64, capacity_factor = 0.0 : f64} : tensor<?x16xf32>, tensor<4x16xf32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @l_experts(%x: tensor<?x16xf32>, %g: tensor<4x16xf32>, %w1: tensor<5x8x16xf32>, %w2: tensor<5x16x8xf32>) {
  // expected-error @+1 {{'moe.layer' op the gate has E = 4 experts, the expert weights 5}}
  %y = moe.layer gelu %x, %g, %w1, %w2 {k = 2 : i64} : tensor<?x16xf32>, tensor<4x16xf32>, tensor<5x8x16xf32>, tensor<5x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @l_bias(%x: tensor<?x16xf32>, %g: tensor<4x16xf32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>, %b: tensor<5xf32>) {
  // expected-error @+1 {{'moe.layer' op bias must be [E] = [4], got 'tensor<5xf32>'}}
  %y = moe.layer gelu %x, %g, %w1, %w2 bias(%b : tensor<5xf32>) {k = 2 : i64} : tensor<?x16xf32>, tensor<4x16xf32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @l_shared_up_alone(%x: tensor<?x16xf32>, %g: tensor<4x16xf32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>, %s: tensor<8x16xf32>) {
  // expected-error @+1 {{'moe.layer' op shared_up and shared_gate need shared(w1, w2)}}
  %y = moe.layer gelu %x, %g, %w1, %w2 shared_up(%s : tensor<8x16xf32>) {k = 2 : i64} : tensor<?x16xf32>, tensor<4x16xf32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @l_shared(%x: tensor<?x16xf32>, %g: tensor<4x16xf32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>, %s1: tensor<8x16xf32>, %s2: tensor<16x9xf32>) {
  // expected-error @+1 {{'moe.layer' op shared w2 must be [d, f] = [16, 8], got 'tensor<16x9xf32>'}}
  %y = moe.layer gelu %x, %g, %w1, %w2 shared(%s1, %s2 : tensor<8x16xf32>, tensor<16x9xf32>) {k = 2 : i64} : tensor<?x16xf32>, tensor<4x16xf32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @l_swiglu(%x: tensor<?x16xf32>, %g: tensor<4x16xf32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>) {
  // expected-error @+1 {{'moe.layer' op swiglu experts need the up projection up(w3)}}
  %y = moe.layer swiglu %x, %g, %w1, %w2 {k = 2 : i64} : tensor<?x16xf32>, tensor<4x16xf32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @l_result(%x: tensor<?x16xf32>, %g: tensor<4x16xf32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>) {
  // expected-error @+1 {{'moe.layer' op result must be [T, d] = [?, 16], got 'tensor<?x8xf32>'}}
  %y = moe.layer gelu %x, %g, %w1, %w2 {k = 2 : i64} : tensor<?x16xf32>, tensor<4x16xf32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x8xf32>
  return
}

// -----

func.func @l_gate_type(%x: tensor<?x16xf32>, %g: tensor<4x16xf16>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>) {
  // expected-error @+1 {{'moe.layer' op gate must have the input's element type 'f32', got 'tensor<4x16xf16>'}}
  %y = moe.layer gelu %x, %g, %w1, %w2 {k = 2 : i64} : tensor<?x16xf32>, tensor<4x16xf16>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @l_no_experts(%x: tensor<?x16xf32>, %g: tensor<0x16xf32>, %w1: tensor<0x8x16xf32>, %w2: tensor<0x16x8xf32>) {
  // expected-error @+1 {{'moe.layer' op needs at least one expert, got E = 0}}
  %y = moe.layer gelu %x, %g, %w1, %w2 {k = 1 : i64} : tensor<?x16xf32>, tensor<0x16xf32>, tensor<0x8x16xf32>, tensor<0x16x8xf32> -> tensor<?x16xf32>
  return
}
