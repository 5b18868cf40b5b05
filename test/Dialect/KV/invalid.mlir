// RUN: moka-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{unsupported bit width 'i3' of a quantized cache (i8, i4 or i2)}}
func.func @f(%c: !kv.cache<1x8x256x128, i3, key_group = 32, value_group = 32, window = 128>)

// -----

// expected-error @+1 {{unsupported cache format 'f64' (f32, f16, bf16, i8, i4 or i2)}}
func.func @f(%c: !kv.cache<1x8x256x128, f64>)

// -----

// expected-error @+1 {{cache shape must be B x H x S x D (4 sizes), got 3}}
func.func @f(%c: !kv.cache<8x256x128, f32>)

// -----

// expected-error @+1 {{cache sizes must be positive}}
func.func @f(%c: !kv.cache<1x0x256x128, f32>)

// -----

// expected-error @+1 {{head size D = 100 is not divisible by the value group G_c = 32}}
func.func @f(%c: !kv.cache<1x8x256x100, i4, key_group = 32, value_group = 32, window = 128>)

// -----

// expected-error @+1 {{capacity S = 250 is not divisible by the key group G_t = 32}}
func.func @f(%c: !kv.cache<1x8x250x128, i4, key_group = 32, value_group = 32, window = 128>)

// -----

// expected-error @+1 {{window R = 512 is larger than the capacity S = 256}}
func.func @f(%c: !kv.cache<1x8x256x128, i4, key_group = 32, value_group = 32, window = 512>)

// -----

// expected-error @+1 {{window R = 48 must be a positive multiple of the key group G_t = 32}}
func.func @f(%c: !kv.cache<1x8x256x128, i4, key_group = 32, value_group = 32, window = 48>)

// -----

// expected-error @+1 {{head size D = 2 of 'i2' codes does not fill whole bytes}}
func.func @f(%c: !kv.cache<1x8x256x2, i2, key_group = 32, value_group = 2, window = 128>)

// -----

// expected-error @+1 {{a quantized cache needs positive key_group, value_group and window}}
func.func @f(%c: !kv.cache<1x8x256x128, i8, key_group = 32>)

// -----

// expected-error @+1 {{key_group, value_group and window apply to quantized caches only (format 'f32')}}
func.func @f(%c: !kv.cache<1x8x256x128, f32, window = 128>)

// -----

// expected-error @+1 {{a low-rank latent cache stores f32, f16 or bf16, not 'i4'}}
func.func @f(%c: !kv.cache<1x8x256x128, i4, key_group = 32, value_group = 32, window = 128, rank = 64>)

// -----

// expected-error @+1 {{rank must be positive, got -4}}
func.func @f(%c: !kv.cache<1x8x256x128, f32, rank = -4>)

// -----

// expected-error @+1 {{unknown cache parameter 'groups' (key_group, value_group, window, rank)}}
func.func @f(%c: !kv.cache<1x8x256x128, i4, groups = 4>)

// -----

func.func @f(%c: !kv.cache<1x8x256x128, f32>, %k: tensor<1x4x?x128xf32>) {
  // expected-error @+1 {{'kv.append' op keys must be 1x8x?x128, got 'tensor<1x4x?x128xf32>'}}
  %0 = kv.append %c, %k, %k : !kv.cache<1x8x256x128, f32>, tensor<1x4x?x128xf32>, tensor<1x4x?x128xf32>
  return
}

// -----

func.func @f(%c: !kv.cache<1x8x256x128, f32>, %k: tensor<1x8x3x128xf32>, %v: tensor<1x8x4x128xf32>) {
  // expected-error @+1 {{'kv.append' op keys and values hold different token counts (3 vs 4)}}
  %0 = kv.append %c, %k, %v : !kv.cache<1x8x256x128, f32>, tensor<1x8x3x128xf32>, tensor<1x8x4x128xf32>
  return
}

// -----

func.func @f(%c: !kv.cache<1x8x256x128, f32>, %k: tensor<1x8x3x128xf32>, %v: tensor<1x8x3x128xf16>) {
  // expected-error @+1 {{'kv.append' op keys and values must have the same element type}}
  %0 = kv.append %c, %k, %v : !kv.cache<1x8x256x128, f32>, tensor<1x8x3x128xf32>, tensor<1x8x3x128xf16>
  return
}

// -----

func.func @f(%c: !kv.cache<1x8x256x128, f32>, %k: tensor<1x8x3x128xf32>) {
  // expected-error @+1 {{'kv.append' op appending to a key/value cache needs keys and values}}
  %0 = kv.append %c, %k : !kv.cache<1x8x256x128, f32>, tensor<1x8x3x128xf32>
  return
}

// -----

func.func @f(%c: !kv.cache<1x8x256x128, f32, rank = 64>, %k: tensor<1x3x64xf32>) {
  // expected-error @+1 {{'kv.append' op a latent cache appends one tensor c[B, T, r], not keys and values}}
  %0 = kv.append %c, %k, %k : !kv.cache<1x8x256x128, f32, rank = 64>, tensor<1x3x64xf32>, tensor<1x3x64xf32>
  return
}

// -----

func.func @f(%c: !kv.cache<1x8x256x128, f32, rank = 64>, %k: tensor<1x3x32xf32>) {
  // expected-error @+1 {{'kv.append' op the latent must be 1x?x64, got 'tensor<1x3x32xf32>'}}
  %0 = kv.append %c, %k : !kv.cache<1x8x256x128, f32, rank = 64>, tensor<1x3x32xf32>
  return
}

// -----

func.func @f(%c: !kv.cache<1x8x256x128, f32>, %q: tensor<1x12x128xf32>) {
  // expected-error @+1 {{'kv.decode_attention' op query heads H_q = 12 are not a multiple of the key/value heads H_kv = 8}}
  %0 = kv.decode_attention %q, %c : tensor<1x12x128xf32>, !kv.cache<1x8x256x128, f32> -> tensor<1x12x128xf32>
  return
}

// -----

func.func @f(%c: !kv.cache<1x8x256x128, f32>, %q: tensor<1x8x64xf32>) {
  // expected-error @+1 {{'kv.decode_attention' op query must be 1x?x128, got 'tensor<1x8x64xf32>'}}
  %0 = kv.decode_attention %q, %c : tensor<1x8x64xf32>, !kv.cache<1x8x256x128, f32> -> tensor<1x8x64xf32>
  return
}

// -----

func.func @f(%c: !kv.cache<1x8x256x128, f32>, %q: tensor<8x128xf32>) {
  // expected-error @+1 {{'kv.decode_attention' op query must be B x H_q x D, got 'tensor<8x128xf32>'}}
  %0 = kv.decode_attention %q, %c : tensor<8x128xf32>, !kv.cache<1x8x256x128, f32> -> tensor<8x128xf32>
  return
}

// -----

func.func @f(%c: !kv.cache<1x8x256x128, f32>, %q: tensor<1x8x128xf32>) {
  // expected-error @+1 {{'kv.decode_attention' op result type 'tensor<1x16x128xf32>' must equal the query type 'tensor<1x8x128xf32>'}}
  %0 = kv.decode_attention %q, %c : tensor<1x8x128xf32>, !kv.cache<1x8x256x128, f32> -> tensor<1x16x128xf32>
  return
}

// -----

func.func @f(%c: !kv.cache<1x8x256x128, f32>, %q: tensor<1x8x128xf32>) {
  // expected-error @+1 {{'kv.decode_attention' op scale must be positive and finite}}
  %0 = kv.decode_attention %q, %c {scale = -1.0 : f64} : tensor<1x8x128xf32>, !kv.cache<1x8x256x128, f32> -> tensor<1x8x128xf32>
  return
}

// -----

func.func @f(%c: !kv.cache<1x8x256x128, f32>, %q: tensor<1x8x128xf32>, %u: tensor<64x8x128xf32>) {
  // expected-error @+1 {{'kv.decode_attention' op up-projections apply to latent caches only}}
  %0 = kv.decode_attention %q, %c up(%u, %u : tensor<64x8x128xf32>, tensor<64x8x128xf32>) : tensor<1x8x128xf32>, !kv.cache<1x8x256x128, f32> -> tensor<1x8x128xf32>
  return
}

// -----

func.func @f(%c: !kv.cache<1x8x256x128, f32, rank = 64>, %q: tensor<1x8x128xf32>, %u: tensor<32x8x128xf32>) {
  // expected-error @+1 {{'kv.decode_attention' op up-projection of keys must be 64x8x128, got 'tensor<32x8x128xf32>'}}
  %0 = kv.decode_attention %q, %c up(%u, %u : tensor<32x8x128xf32>, tensor<32x8x128xf32>) : tensor<1x8x128xf32>, !kv.cache<1x8x256x128, f32, rank = 64> -> tensor<1x8x128xf32>
  return
}

// -----

func.func @f(%c: !kv.cache<1x8x256x128, f32, rank = 64>, %q: tensor<1x8x128xf32>) {
  // expected-error @+1 {{'kv.decode_attention' op query must be 1x?x64, got 'tensor<1x8x128xf32>'}}
  %0 = kv.decode_attention %q, %c : tensor<1x8x128xf32>, !kv.cache<1x8x256x128, f32, rank = 64> -> tensor<1x8x128xf32>
  return
}

// -----

// expected-error @+1 {{key_group must be positive, got 0}}
func.func @f(%c: !kv.cache<1x8x256x128, i4, key_group = 0, value_group = 32, window = 128>)

// -----

func.func @f(%c: !kv.cache<1x8x256x128, f32>, %q: tensor<1x?x128xf32>) {
  // expected-error @+1 {{'kv.decode_attention' op query must have a static shape, got 'tensor<1x?x128xf32>'}}
  %0 = kv.decode_attention %q, %c : tensor<1x?x128xf32>, !kv.cache<1x8x256x128, f32> -> tensor<1x?x128xf32>
  return
}

// -----

func.func @f(%c: !kv.cache<1x8x256x128, f32, rank = 64>, %q: tensor<1x8x128xf32>, %u: tensor<64x8x128xf32>) {
  // expected-error @+1 {{'kv.decode_attention' op up-projections come in pairs: keys and values}}
  %0 = "kv.decode_attention"(%q, %c, %u) <{operandSegmentSizes = array<i32: 1, 1, 1, 0>}> : (tensor<1x8x128xf32>, !kv.cache<1x8x256x128, f32, rank = 64>, tensor<64x8x128xf32>) -> tensor<1x8x128xf32>
  return
}

// -----

func.func @f(%q: tensor<1x12x4x64xf32>, %k: tensor<1x8x4x64xf32>) {
  // expected-error @+1 {{'kv.prefill_attention' op query heads H_q = 12 are not a multiple of the key/value heads H_kv = 8}}
  %0 = kv.prefill_attention %q, %k, %k : tensor<1x12x4x64xf32>, tensor<1x8x4x64xf32>, tensor<1x8x4x64xf32> -> tensor<1x12x4x64xf32>
  return
}

// -----

func.func @f(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x5x64xf32>) {
  // expected-error @+1 {{'kv.prefill_attention' op query and keys hold different token counts (4 vs 5)}}
  %0 = kv.prefill_attention %q, %k, %k : tensor<1x8x4x64xf32>, tensor<1x8x5x64xf32>, tensor<1x8x5x64xf32> -> tensor<1x8x4x64xf32>
  return
}

// -----

func.func @f(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x4x32xf32>) {
  // expected-error @+1 {{'kv.prefill_attention' op query 'tensor<1x8x4x64xf32>' and keys 'tensor<1x8x4x32xf32>' differ in batch or head size}}
  %0 = kv.prefill_attention %q, %k, %k : tensor<1x8x4x64xf32>, tensor<1x8x4x32xf32>, tensor<1x8x4x32xf32> -> tensor<1x8x4x64xf32>
  return
}

// -----

func.func @f(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x4x64xf32>, %v: tensor<1x8x4x64xf16>) {
  // expected-error @+1 {{'kv.prefill_attention' op keys 'tensor<1x8x4x64xf32>' and values 'tensor<1x8x4x64xf16>' must have the same type}}
  %0 = kv.prefill_attention %q, %k, %v : tensor<1x8x4x64xf32>, tensor<1x8x4x64xf32>, tensor<1x8x4x64xf16> -> tensor<1x8x4x64xf32>
  return
}

// -----

func.func @f(%q: tensor<1x?x4x64xf32>, %k: tensor<1x8x4x64xf32>) {
  // expected-error @+1 {{'kv.prefill_attention' op batch, head and head-size dimensions must be static}}
  %0 = kv.prefill_attention %q, %k, %k : tensor<1x?x4x64xf32>, tensor<1x8x4x64xf32>, tensor<1x8x4x64xf32> -> tensor<1x?x4x64xf32>
  return
}

// -----

func.func @f(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x4x64xf32>) {
  // expected-error @+1 {{'kv.prefill_attention' op result type 'tensor<1x8x4x32xf32>' must equal the query type 'tensor<1x8x4x64xf32>'}}
  %0 = kv.prefill_attention %q, %k, %k : tensor<1x8x4x64xf32>, tensor<1x8x4x64xf32>, tensor<1x8x4x64xf32> -> tensor<1x8x4x32xf32>
  return
}

// -----

func.func @f(%q: tensor<1x8x4xf32>, %k: tensor<1x8x4x64xf32>) {
  // expected-error @+1 {{'kv.prefill_attention' op query, keys and values must be B x H x T x D}}
  %0 = kv.prefill_attention %q, %k, %k : tensor<1x8x4xf32>, tensor<1x8x4x64xf32>, tensor<1x8x4x64xf32> -> tensor<1x8x4xf32>
  return
}

// -----

func.func @f(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x4x64xf32>) {
  // expected-error @+1 {{'kv.prefill_attention' op scale must be positive and finite}}
  %0 = kv.prefill_attention %q, %k, %k {scale = 0.0 : f64} : tensor<1x8x4x64xf32>, tensor<1x8x4x64xf32>, tensor<1x8x4x64xf32> -> tensor<1x8x4x64xf32>
  return
}
