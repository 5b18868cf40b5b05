// RUN: moka-opt %s -split-input-file -verify-diagnostics

func.func @rank0(%x: tensor<f32>, %a: tensor<1x6xf32>, %b: tensor<1x4xf32>) -> tensor<f32> {
  // expected-error @+1 {{'kan.rational' op input must have rank >= 1 (channels last), got rank 0}}
  %y = kan.rational %x, %a, %b : tensor<f32>, tensor<1x6xf32>, tensor<1x4xf32>
  return %y : tensor<f32>
}

// -----

func.func @not_divisible(%x: tensor<4x30xf32>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> tensor<4x30xf32> {
  // expected-error @+1 {{'kan.rational' op channel count C = 30 is not divisible by the number of groups G = 8}}
  %y = kan.rational %x, %a, %b : tensor<4x30xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %y : tensor<4x30xf32>
}

// -----

func.func @numerator_degree(%x: tensor<4x32xf32>, %a: tensor<8x5xf32>, %b: tensor<8x4xf32>) -> tensor<4x32xf32> {
  // expected-error @+1 {{'kan.rational' op numerator has 5 coefficients per group, expected m + 1 = 6}}
  %y = kan.rational %x, %a, %b : tensor<4x32xf32>, tensor<8x5xf32>, tensor<8x4xf32>
  return %y : tensor<4x32xf32>
}

// -----

func.func @denominator_degree(%x: tensor<4x32xf32>, %a: tensor<8x4xf32>, %b: tensor<8x4xf32>) -> tensor<4x32xf32> {
  // expected-error @+1 {{'kan.rational' op denominator has 4 coefficients per group, expected n = 2}}
  %y = kan.rational %x, %a, %b {m = 3 : i64, n = 2 : i64} : tensor<4x32xf32>, tensor<8x4xf32>, tensor<8x4xf32>
  return %y : tensor<4x32xf32>
}

// -----

func.func @numerator_rows(%x: tensor<4x32xf32>, %a: tensor<4x6xf32>, %b: tensor<8x4xf32>) -> tensor<4x32xf32> {
  // expected-error @+1 {{'kan.rational' op numerator has 4 rows, expected 1 (shared) or G = 8}}
  %y = kan.rational %x, %a, %b : tensor<4x32xf32>, tensor<4x6xf32>, tensor<8x4xf32>
  return %y : tensor<4x32xf32>
}

// -----

func.func @zero_groups(%x: tensor<4x32xf32>, %a: tensor<1x6xf32>, %b: tensor<0x4xf32>) -> tensor<4x32xf32> {
  // expected-error @+1 {{'kan.rational' op denominator must have one row per group, got 0 rows}}
  %y = kan.rational %x, %a, %b : tensor<4x32xf32>, tensor<1x6xf32>, tensor<0x4xf32>
  return %y : tensor<4x32xf32>
}

// -----

func.func @dynamic_coefficients(%x: tensor<4x32xf32>, %a: tensor<?x6xf32>, %b: tensor<8x4xf32>) -> tensor<4x32xf32> {
  // expected-error @+1 {{'kan.rational' op coefficient shapes must be static, got 'tensor<?x6xf32>' and 'tensor<8x4xf32>'}}
  %y = kan.rational %x, %a, %b : tensor<4x32xf32>, tensor<?x6xf32>, tensor<8x4xf32>
  return %y : tensor<4x32xf32>
}

// -----

func.func @mixed_coefficients(%x: tensor<4x32xf16>, %a: tensor<8x6xf32>, %b: tensor<8x4xf16>) -> tensor<4x32xf16> {
  // expected-error @+1 {{'kan.rational' op numerator and denominator element types differ: 'f32' vs 'f16'}}
  %y = kan.rational %x, %a, %b : tensor<4x32xf16>, tensor<8x6xf32>, tensor<8x4xf16>
  return %y : tensor<4x32xf16>
}

// -----

func.func @coefficient_type(%x: tensor<4x32xf32>, %a: tensor<8x6xbf16>, %b: tensor<8x4xbf16>) -> tensor<4x32xf32> {
  // expected-error @+1 {{'kan.rational' op coefficient element type must be f32 or the input element type 'f32', got 'bf16'}}
  %y = kan.rational %x, %a, %b : tensor<4x32xf32>, tensor<8x6xbf16>, tensor<8x4xbf16>
  return %y : tensor<4x32xf32>
}

// -----

func.func @input_type(%x: tensor<4x32xf64>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> tensor<4x32xf64> {
  // expected-error @+1 {{'kan.rational' op operand #0 must be ranked tensor of 32-bit float or 16-bit float or bfloat16 type values}}
  %y = kan.rational %x, %a, %b : tensor<4x32xf64>, tensor<8x6xf32>, tensor<8x4xf32>
  return %y : tensor<4x32xf64>
}

// -----

func.func @coefficient_rank(%x: tensor<4x32xf32>, %a: tensor<6xf32>, %b: tensor<8x4xf32>) -> tensor<4x32xf32> {
  // expected-error @+1 {{'kan.rational' op operand #1 must be 2D tensor of 32-bit float or 16-bit float or bfloat16 type values}}
  %y = kan.rational %x, %a, %b : tensor<4x32xf32>, tensor<6xf32>, tensor<8x4xf32>
  return %y : tensor<4x32xf32>
}

// -----

func.func @degree_range(%x: tensor<4x32xf32>, %a: tensor<8x18xf32>, %b: tensor<8x4xf32>) -> tensor<4x32xf32> {
  // expected-error @+1 {{'kan.rational' op attribute 'm' failed to satisfy constraint: 64-bit signless integer attribute whose minimum value is 0 whose maximum value is 16}}
  %y = kan.rational %x, %a, %b {m = 17 : i64} : tensor<4x32xf32>, tensor<8x18xf32>, tensor<8x4xf32>
  return %y : tensor<4x32xf32>
}

// -----

func.func @negative_degree(%x: tensor<4x32xf32>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> tensor<4x32xf32> {
  // expected-error @+1 {{'kan.rational' op attribute 'n' failed to satisfy constraint: 64-bit signless integer attribute whose minimum value is 0 whose maximum value is 16}}
  %y = kan.rational %x, %a, %b {n = -1 : i64} : tensor<4x32xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %y : tensor<4x32xf32>
}

// -----

func.func @result_type(%x: tensor<4x32xf32>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> tensor<4x32xf16> {
  // expected-error @+1 {{'kan.rational' op failed to verify that all of {input, result} have same type}}
  %y = "kan.rational"(%x, %a, %b) : (tensor<4x32xf32>, tensor<8x6xf32>, tensor<8x4xf32>) -> tensor<4x32xf16>
  return %y : tensor<4x32xf16>
}
