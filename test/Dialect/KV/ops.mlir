// RUN: moka-opt %s | FileCheck %s
// RUN: moka-opt %s --mlir-print-op-generic | moka-opt | FileCheck %s
// RUN: moka-opt %s --verify-roundtrip

// CHECK-LABEL: func @quantized
// CHECK: kv.empty : !kv.cache<1x8x4096x128, i4, key_group = 32, value_group = 32, window = 128>
// CHECK: kv.append %{{.*}}, %{{.*}}, %{{.*}} : !kv.cache<1x8x4096x128, i4, key_group = 32, value_group = 32, window = 128>, tensor<1x8x?x128xf32>, tensor<1x8x?x128xf32>
// CHECK: kv.decode_attention %{{.*}}, %{{.*}} : tensor<1x32x128xf32>, !kv.cache<1x8x4096x128, i4, key_group = 32, value_group = 32, window = 128> -> tensor<1x32x128xf32>
func.func @quantized(%k: tensor<1x8x?x128xf32>, %v: tensor<1x8x?x128xf32>,
                     %q: tensor<1x32x128xf32>) -> tensor<1x32x128xf32> {
  %c0 = kv.empty : !kv.cache<1x8x4096x128, i4, key_group = 32, value_group = 32, window = 128>
  %c1 = kv.append %c0, %k, %v : !kv.cache<1x8x4096x128, i4, key_group = 32, value_group = 32, window = 128>, tensor<1x8x?x128xf32>, tensor<1x8x?x128xf32>
  %o = kv.decode_attention %q, %c1 : tensor<1x32x128xf32>, !kv.cache<1x8x4096x128, i4, key_group = 32, value_group = 32, window = 128> -> tensor<1x32x128xf32>
  return %o : tensor<1x32x128xf32>
}

// CHECK-LABEL: func @float_cache
// CHECK: kv.decode_attention %{{.*}}, %{{.*}} {scale = 1.250000e-01 : f64} : tensor<2x4x64xf32>, !kv.cache<2x4x256x64, f16> -> tensor<2x4x64xf32>
func.func @float_cache(%c: !kv.cache<2x4x256x64, f16>, %q: tensor<2x4x64xf32>)
    -> tensor<2x4x64xf32> {
  %o = kv.decode_attention %q, %c {scale = 0.125 : f64} : tensor<2x4x64xf32>, !kv.cache<2x4x256x64, f16> -> tensor<2x4x64xf32>
  return %o : tensor<2x4x64xf32>
}

// CHECK-LABEL: func @latent
// CHECK: kv.append %{{.*}}, %{{.*}} : !kv.cache<1x16x1024x64, f32, rank = 128>, tensor<1x?x128xf32>
// CHECK: kv.decode_attention %{{.*}}, %{{.*}} up(%{{.*}}, %{{.*}} : tensor<128x16x64xf32>, tensor<128x16x64xf32>) : tensor<1x16x64xf32>, !kv.cache<1x16x1024x64, f32, rank = 128> -> tensor<1x16x64xf32>
// CHECK: kv.decode_attention %{{.*}}, %{{.*}} : tensor<1x16x128xf32>, !kv.cache<1x16x1024x64, f32, rank = 128> -> tensor<1x16x128xf32>
func.func @latent(%c0: !kv.cache<1x16x1024x64, f32, rank = 128>, %c: tensor<1x?x128xf32>,
                  %q: tensor<1x16x64xf32>, %uk: tensor<128x16x64xf32>,
                  %uv: tensor<128x16x64xf32>, %ql: tensor<1x16x128xf32>)
    -> (tensor<1x16x64xf32>, tensor<1x16x128xf32>) {
  %c1 = kv.append %c0, %c : !kv.cache<1x16x1024x64, f32, rank = 128>, tensor<1x?x128xf32>
  %o = kv.decode_attention %q, %c1 up(%uk, %uv : tensor<128x16x64xf32>, tensor<128x16x64xf32>) : tensor<1x16x64xf32>, !kv.cache<1x16x1024x64, f32, rank = 128> -> tensor<1x16x64xf32>
  %ol = kv.decode_attention %ql, %c1 : tensor<1x16x128xf32>, !kv.cache<1x16x1024x64, f32, rank = 128> -> tensor<1x16x128xf32>
  return %o, %ol : tensor<1x16x64xf32>, tensor<1x16x128xf32>
}

// CHECK-LABEL: func @prefill
// CHECK: kv.prefill_attention %{{.*}}, %{{.*}}, %{{.*}} {causal} : tensor<1x32x?x128xf32>, tensor<1x8x?x128xf16>, tensor<1x8x?x128xf16> -> tensor<1x32x?x128xf32>
func.func @prefill(%q: tensor<1x32x?x128xf32>, %k: tensor<1x8x?x128xf16>,
                   %v: tensor<1x8x?x128xf16>) -> tensor<1x32x?x128xf32> {
  %o = kv.prefill_attention %q, %k, %v {causal} : tensor<1x32x?x128xf32>, tensor<1x8x?x128xf16>, tensor<1x8x?x128xf16> -> tensor<1x32x?x128xf32>
  return %o : tensor<1x32x?x128xf32>
}
