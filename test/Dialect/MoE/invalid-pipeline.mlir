// RUN: moka-opt %s -split-input-file -verify-diagnostics

// Every verifier message of moe.dispatch, moe.experts and moe.combine.

func.func @d_rank(%i: tensor<8xi32>) {
  // expected-error @+1 {{'moe.dispatch' op experts must be [T, k], got 'tensor<8xi32>'}}
  %r, %o, %s = moe.dispatch %i {num_experts = 4 : i64} : tensor<8xi32> -> tensor<8xi32>, tensor<5xi32>, tensor<8xi32>
  return
}

// -----

func.func @d_num(%i: tensor<4x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op num_experts must be >= 1, got 0}}
  %r, %o, %s = moe.dispatch %i {num_experts = 0 : i64} : tensor<4x2xi32> -> tensor<8xi32>, tensor<1xi32>, tensor<4x2xi32>
  return
}

// -----

func.func @d_num_i32(%i: tensor<4x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op num_experts must be < 2^31 - 1 (expert indices and offsets are i32), got 9223372036854775807}}
  %r, %o, %s = moe.dispatch %i {num_experts = 9223372036854775807 : i64} : tensor<4x2xi32> -> tensor<8xi32>, tensor<?xi32>, tensor<4x2xi32>
  return
}

// -----

func.func @d_cap(%i: tensor<4x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op capacity_factor must be finite and > 0, got -1.000000e+00}}
  %r, %o, %s = moe.dispatch %i {num_experts = 4 : i64, capacity_factor = -1.0 : f64} : tensor<4x2xi32> -> tensor<8xi32>, tensor<5xi32>, tensor<4x2xi32>
  return
}

// -----

func.func @d_rows(%i: tensor<4x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op rows must be [T * k] = [8], got 'tensor<7xi32>'}}
  %r, %o, %s = moe.dispatch %i {num_experts = 4 : i64} : tensor<4x2xi32> -> tensor<7xi32>, tensor<5xi32>, tensor<4x2xi32>
  return
}

// -----

func.func @d_offsets(%i: tensor<4x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op offsets must be [E + 1] = [5], got 'tensor<4xi32>'}}
  %r, %o, %s = moe.dispatch %i {num_experts = 4 : i64} : tensor<4x2xi32> -> tensor<8xi32>, tensor<4xi32>, tensor<4x2xi32>
  return
}

// -----

func.func @d_slots(%i: tensor<4x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op slots must have the shape of experts 'tensor<4x2xi32>', got 'tensor<4x3xi32>'}}
  %r, %o, %s = moe.dispatch %i {num_experts = 4 : i64} : tensor<4x2xi32> -> tensor<8xi32>, tensor<5xi32>, tensor<4x3xi32>
  return
}

// -----

func.func @x_rank(%x: tensor<16xf32>, %r: tensor<?xi32>, %o: tensor<5xi32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>) {
  // expected-error @+1 {{'moe.experts' op input must be [T, d], got 'tensor<16xf32>'}}
  %y = moe.experts gelu %x, %r, %o, %w1, %w2 : tensor<16xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @x_w1rank(%x: tensor<?x16xf32>, %r: tensor<?xi32>, %o: tensor<5xi32>, %w1: tensor<8x16xf32>, %w2: tensor<4x16x8xf32>) {
  // expected-error @+1 {{'moe.experts' op w1 must be a stack [E, ., .] of expert weights, got 'tensor<8x16xf32>'}}
  %y = moe.experts gelu %x, %r, %o, %w1, %w2 : tensor<?x16xf32>, tensor<?xi32>, tensor<5xi32>, tensor<8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @x_dynE(%x: tensor<?x16xf32>, %r: tensor<?xi32>, %o: tensor<5xi32>, %w1: tensor<?x8x16xf32>, %w2: tensor<4x16x8xf32>) {
  // expected-error @+1 {{'moe.experts' op the number of experts (w1's first dimension) must be static, got 'tensor<?x8x16xf32>'}}
  %y = moe.experts gelu %x, %r, %o, %w1, %w2 : tensor<?x16xf32>, tensor<?xi32>, tensor<5xi32>, tensor<?x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @x_w1d(%x: tensor<?x16xf32>, %r: tensor<?xi32>, %o: tensor<5xi32>, %w1: tensor<4x8x12xf32>, %w2: tensor<4x16x8xf32>) {
  // expected-error @+1 {{'moe.experts' op w1 must be [E, f, d] with d = 16 (the input's), got 'tensor<4x8x12xf32>'}}
  %y = moe.experts gelu %x, %r, %o, %w1, %w2 : tensor<?x16xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x8x12xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @x_w2(%x: tensor<?x16xf32>, %r: tensor<?xi32>, %o: tensor<5xi32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x9xf32>) {
  // expected-error @+1 {{'moe.experts' op w2 must be [E, d, f] = [4, 16, 8], got 'tensor<4x16x9xf32>'}}
  %y = moe.experts gelu %x, %r, %o, %w1, %w2 : tensor<?x16xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x8x16xf32>, tensor<4x16x9xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @x_noup(%x: tensor<?x16xf32>, %r: tensor<?xi32>, %o: tensor<5xi32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>) {
  // expected-error @+1 {{'moe.experts' op swiglu experts need the up projection up(w3)}}
  %y = moe.experts swiglu %x, %r, %o, %w1, %w2 : tensor<?x16xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @x_up(%x: tensor<?x16xf32>, %r: tensor<?xi32>, %o: tensor<5xi32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>, %w3: tensor<4x8x16xf32>) {
  // expected-error @+1 {{'moe.experts' op only swiglu experts take an up projection}}
  %y = moe.experts gelu %x, %r, %o, %w1, %w2 up(%w3 : tensor<4x8x16xf32>) : tensor<?x16xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @x_w3(%x: tensor<?x16xf32>, %r: tensor<?xi32>, %o: tensor<5xi32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>, %w3: tensor<4x9x16xf32>) {
  // expected-error @+1 {{'moe.experts' op w3 must have the shape of w1 'tensor<4x8x16xf32>', got 'tensor<4x9x16xf32>'}}
  %y = moe.experts swiglu %x, %r, %o, %w1, %w2 up(%w3 : tensor<4x9x16xf32>) : tensor<?x16xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @x_elt(%x: tensor<?x16xf32>, %r: tensor<?xi32>, %o: tensor<5xi32>, %w1: tensor<4x8x16xf16>, %w2: tensor<4x16x8xf16>) {
  // expected-error @+1 {{'moe.experts' op expert weights must have the input's element type 'f32', got 'tensor<4x8x16xf16>'}}
  %y = moe.experts gelu %x, %r, %o, %w1, %w2 : tensor<?x16xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x8x16xf16>, tensor<4x16x8xf16> -> tensor<?x16xf32>
  return
}

// -----

func.func @x_offsets(%x: tensor<?x16xf32>, %r: tensor<?xi32>, %o: tensor<4xi32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>) {
  // expected-error @+1 {{'moe.experts' op offsets must be [E + 1] = [5], got 'tensor<4xi32>'}}
  %y = moe.experts gelu %x, %r, %o, %w1, %w2 : tensor<?x16xf32>, tensor<?xi32>, tensor<4xi32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @x_result(%x: tensor<?x16xf32>, %r: tensor<10xi32>, %o: tensor<5xi32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>) {
  // expected-error @+1 {{'moe.experts' op result must be [N, d] = [10, 16], got 'tensor<9x16xf32>'}}
  %y = moe.experts gelu %x, %r, %o, %w1, %w2 : tensor<?x16xf32>, tensor<10xi32>, tensor<5xi32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<9x16xf32>
  return
}

// -----

func.func @c_y(%y: tensor<8xf32>, %s: tensor<4x2xi32>, %w: tensor<4x2xf32>) {
  // expected-error @+1 {{'moe.combine' op expert_outputs must be [N, d], got 'tensor<8xf32>'}}
  %o = moe.combine %y, %s, %w : tensor<8xf32>, tensor<4x2xi32>, tensor<4x2xf32> -> tensor<4x16xf32>
  return
}

// -----

func.func @c_slots(%y: tensor<8x16xf32>, %s: tensor<4xi32>, %w: tensor<4x2xf32>) {
  // expected-error @+1 {{'moe.combine' op slots must be [T, k], got 'tensor<4xi32>'}}
  %o = moe.combine %y, %s, %w : tensor<8x16xf32>, tensor<4xi32>, tensor<4x2xf32> -> tensor<4x16xf32>
  return
}

// -----

func.func @c_w(%y: tensor<8x16xf32>, %s: tensor<4x2xi32>, %w: tensor<4x3xf32>) {
  // expected-error @+1 {{'moe.combine' op weights must have the shape of slots 'tensor<4x2xi32>', got 'tensor<4x3xf32>'}}
  %o = moe.combine %y, %s, %w : tensor<8x16xf32>, tensor<4x2xi32>, tensor<4x3xf32> -> tensor<4x16xf32>
  return
}

// -----

func.func @c_result(%y: tensor<8x16xf32>, %s: tensor<4x2xi32>, %w: tensor<4x2xf32>) {
  // expected-error @+1 {{'moe.combine' op result must be [T, d] = [4, 16], got 'tensor<4x15xf32>'}}
  %o = moe.combine %y, %s, %w : tensor<8x16xf32>, tensor<4x2xi32>, tensor<4x2xf32> -> tensor<4x15xf32>
  return
}

// -----

func.func @c_shared(%y: tensor<8x16xf32>, %s: tensor<4x2xi32>, %w: tensor<4x2xf32>, %sh: tensor<5x16xf32>) {
  // expected-error @+1 {{'moe.combine' op shared must be [T, d] = [4, 16], got 'tensor<5x16xf32>'}}
  %o = moe.combine %y, %s, %w shared(%sh : tensor<5x16xf32>) : tensor<8x16xf32>, tensor<4x2xi32>, tensor<4x2xf32> -> tensor<4x16xf32>
  return
}
