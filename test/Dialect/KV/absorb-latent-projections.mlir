// RUN: moka-opt %s --kv-absorb-latent-projections | FileCheck %s

!L = !kv.cache<1x16x1024x64, f32, rank = 128>

// q' = q up_k^T per head, attention on the latent with the original scale
// 1/sqrt(64), o = o' up_v per head: keys and values are never rebuilt.
// CHECK-LABEL: func.func @mla
// CHECK: %[[QL:.*]] = linalg.generic {{.*}} ins(%arg0, %arg2 : tensor<1x16x64xf32>, tensor<128x16x64xf32>) outs(%{{.*}} : tensor<1x16x128xf32>)
// CHECK: %[[OL:.*]] = kv.decode_attention %[[QL]], %arg1 {scale = 1.250000e-01 : f64} : tensor<1x16x128xf32>, !kv.cache<1x16x1024x64, f32, rank = 128> -> tensor<1x16x128xf32>
// CHECK: %[[O:.*]] = linalg.generic {{.*}} ins(%[[OL]], %arg3 : tensor<1x16x128xf32>, tensor<128x16x64xf32>) outs(%{{.*}} : tensor<1x16x64xf32>)
// CHECK: return %[[O]]
func.func @mla(%q: tensor<1x16x64xf32>, %c: !L, %uk: tensor<128x16x64xf32>,
               %uv: tensor<128x16x64xf32>) -> tensor<1x16x64xf32> {
  %o = kv.decode_attention %q, %c up(%uk, %uv : tensor<128x16x64xf32>, tensor<128x16x64xf32>) : tensor<1x16x64xf32>, !L -> tensor<1x16x64xf32>
  return %o : tensor<1x16x64xf32>
}
