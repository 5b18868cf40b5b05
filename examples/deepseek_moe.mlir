// A DeepSeek-V3-style mixture-of-experts block at a reduced size: 64
// fine-grained SwiGLU experts (512 -> 256 -> 512) in 8 groups, sigmoid
// router with a selection bias, the 4 best groups by the sum of their two
// best experts, top-6, renormalized and scaled by 2.5, plus one shared
// expert (512 -> 512 -> 512), on 128 tokens.
func.func @forward(%x: tensor<?x512xf32>, %gate: tensor<64x512xf32>,
                   %w1: tensor<64x256x512xf32>, %w2: tensor<64x512x256xf32>,
                   %w3: tensor<64x256x512xf32>, %bias: tensor<64xf32>,
                   %s1: tensor<512x512xf32>, %s2: tensor<512x512xf32>,
                   %s3: tensor<512x512xf32>) -> tensor<?x512xf32> {
  %y = moe.layer swiglu %x, %gate, %w1, %w2 up(%w3 : tensor<64x256x512xf32>)
      bias(%bias : tensor<64xf32>)
      shared(%s1, %s2 : tensor<512x512xf32>, tensor<512x512xf32>)
      shared_up(%s3 : tensor<512x512xf32>)
      {k = 6 : i64, scoring = #moe<scoring sigmoid>, n_group = 8 : i64,
       topk_group = 4 : i64, group_score = #moe<group_score top2_sum>,
       normalize = true, routed_scaling_factor = 2.5 : f64}
      : tensor<?x512xf32>, tensor<64x512xf32>, tensor<64x256x512xf32>,
        tensor<64x512x256xf32> -> tensor<?x512xf32>
  return %y : tensor<?x512xf32>
}
