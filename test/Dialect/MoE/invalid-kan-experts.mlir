// RUN: moka-opt %s -split-input-file -verify-diagnostics

// Verifier messages of GR-KAN experts (moe.experts kan).

func.func @k_missing(%x: tensor<?x16xf32>, %r: tensor<?xi32>, %o: tensor<5xi32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>) {
  // expected-error @+1 {{'moe.experts' op kan experts need rationals(a1, b1, a2, b2)}}
  %y = moe.experts kan %x, %r, %o, %w1, %w2 : tensor<?x16xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @k_on_gelu(%x: tensor<?x16xf32>, %r: tensor<?xi32>, %o: tensor<5xi32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>, %a1: tensor<4x2x6xf32>, %b1: tensor<4x2x4xf32>, %a2: tensor<4x1x6xf32>, %b2: tensor<4x4x4xf32>) {
  // expected-error @+1 {{'moe.experts' op only kan experts take rationals}}
  %y = moe.experts gelu %x, %r, %o, %w1, %w2 rationals(%a1, %b1, %a2, %b2 : tensor<4x2x6xf32>, tensor<4x2x4xf32>, tensor<4x1x6xf32>, tensor<4x4x4xf32>) : tensor<?x16xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @k_experts(%x: tensor<?x16xf32>, %r: tensor<?xi32>, %o: tensor<5xi32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>, %a1: tensor<3x2x6xf32>, %b1: tensor<4x2x4xf32>, %a2: tensor<4x1x6xf32>, %b2: tensor<4x4x4xf32>) {
  // expected-error @+1 {{'moe.experts' op the first rational's coefficients must stack E = 4 experts, got 'tensor<3x2x6xf32>' and 'tensor<4x2x4xf32>'}}
  %y = moe.experts kan %x, %r, %o, %w1, %w2 rationals(%a1, %b1, %a2, %b2 : tensor<3x2x6xf32>, tensor<4x2x4xf32>, tensor<4x1x6xf32>, tensor<4x4x4xf32>) : tensor<?x16xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @k_rows(%x: tensor<?x16xf32>, %r: tensor<?xi32>, %o: tensor<5xi32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>, %a1: tensor<4x2x6xf32>, %b1: tensor<4x2x4xf32>, %a2: tensor<4x3x6xf32>, %b2: tensor<4x4x4xf32>) {
  // expected-error @+1 {{'moe.experts' op the second rational's numerator must have 1 or G = 4 rows per expert, got 'tensor<4x3x6xf32>'}}
  %y = moe.experts kan %x, %r, %o, %w1, %w2 rationals(%a1, %b1, %a2, %b2 : tensor<4x2x6xf32>, tensor<4x2x4xf32>, tensor<4x3x6xf32>, tensor<4x4x4xf32>) : tensor<?x16xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @k_groups(%x: tensor<?x16xf32>, %r: tensor<?xi32>, %o: tensor<5xi32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>, %a1: tensor<4x3x6xf32>, %b1: tensor<4x3x4xf32>, %a2: tensor<4x1x6xf32>, %b2: tensor<4x4x4xf32>) {
  // expected-error @+1 {{'moe.experts' op the first rational's 3 groups do not divide its 16 channels}}
  %y = moe.experts kan %x, %r, %o, %w1, %w2 rationals(%a1, %b1, %a2, %b2 : tensor<4x3x6xf32>, tensor<4x3x4xf32>, tensor<4x1x6xf32>, tensor<4x4x4xf32>) : tensor<?x16xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @k_degree(%x: tensor<?x16xf32>, %r: tensor<?xi32>, %o: tensor<5xi32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>, %a1: tensor<4x2x18xf32>, %b1: tensor<4x2x4xf32>, %a2: tensor<4x1x6xf32>, %b2: tensor<4x4x4xf32>) {
  // expected-error @+1 {{'moe.experts' op the first rational's degrees must be in [0, 16], got 'tensor<4x2x18xf32>' and 'tensor<4x2x4xf32>'}}
  %y = moe.experts kan %x, %r, %o, %w1, %w2 rationals(%a1, %b1, %a2, %b2 : tensor<4x2x18xf32>, tensor<4x2x4xf32>, tensor<4x1x6xf32>, tensor<4x4x4xf32>) : tensor<?x16xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @k_rank(%x: tensor<?x16xf32>, %r: tensor<?xi32>, %o: tensor<5xi32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>, %a1: tensor<4x2xf32>, %b1: tensor<4x2x4xf32>, %a2: tensor<4x1x6xf32>, %b2: tensor<4x4x4xf32>) {
  // expected-error @+1 {{'moe.experts' op the first rational's coefficients must be static stacks [E, G, .], got 'tensor<4x2xf32>' and 'tensor<4x2x4xf32>'}}
  %y = moe.experts kan %x, %r, %o, %w1, %w2 rationals(%a1, %b1, %a2, %b2 : tensor<4x2xf32>, tensor<4x2x4xf32>, tensor<4x1x6xf32>, tensor<4x4x4xf32>) : tensor<?x16xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @k_type(%x: tensor<?x16xf32>, %r: tensor<?xi32>, %o: tensor<5xi32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>, %a1: tensor<4x2x6xf16>, %b1: tensor<4x2x4xf32>, %a2: tensor<4x1x6xf32>, %b2: tensor<4x4x4xf32>) {
  // expected-error @+1 {{'moe.experts' op rational coefficients must be f32 or the input's element type, the same for a and b}}
  %y = moe.experts kan %x, %r, %o, %w1, %w2 rationals(%a1, %b1, %a2, %b2 : tensor<4x2x6xf16>, tensor<4x2x4xf32>, tensor<4x1x6xf32>, tensor<4x4x4xf32>) : tensor<?x16xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @k_layer(%x: tensor<?x16xf32>, %g: tensor<4x16xf32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>) {
  // expected-error @+1 {{'moe.layer' op kan experts are written with moe.experts; moe.layer takes swiglu or gelu experts}}
  %y = moe.layer kan %x, %g, %w1, %w2 {k = 2 : i64} : tensor<?x16xf32>, tensor<4x16xf32>, tensor<4x8x16xf32>, tensor<4x16x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @k_shared(%x: tensor<?x16xf32>, %a: tensor<8x16xf32>, %b: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.shared_experts' op shared experts are swiglu or gelu}}
  %y = moe.shared_experts kan %x, %a, %b : tensor<?x16xf32>, tensor<8x16xf32>, tensor<16x8xf32> -> tensor<?x16xf32>
  return
}
