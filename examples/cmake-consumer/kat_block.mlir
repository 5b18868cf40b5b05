// A small KAT feed-forward block with its weights: rational -> fc1 (64 ->
// 128) -> rational -> fc2 (128 -> 64), over any number of tokens. The weight
// data is in kat_block.safetensors (moka.weights), not in this file.
module attributes {moka.weights = "kat_block.safetensors"} {
  func.func @forward(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
    %a1 = arith.constant dense_resource<act1_numerator> : tensor<8x6xf32>
    %b1 = arith.constant dense_resource<act1_denominator> : tensor<8x4xf32>
    %w1 = arith.constant dense_resource<fc1_weight> : tensor<128x64xf32>
    %c1 = arith.constant dense_resource<fc1_bias> : tensor<128xf32>
    %a2 = arith.constant dense_resource<act2_numerator> : tensor<8x6xf32>
    %b2 = arith.constant dense_resource<act2_denominator> : tensor<8x4xf32>
    %w2 = arith.constant dense_resource<fc2_weight> : tensor<64x128xf32>
    %c2 = arith.constant dense_resource<fc2_bias> : tensor<64xf32>
    %h = kan.layer rational %x, %w1 bias(%c1 : tensor<128xf32>)
        coefficients(%a1, %b1 : tensor<8x6xf32>, tensor<8x4xf32>)
        : tensor<?x64xf32>, tensor<128x64xf32> -> tensor<?x128xf32>
    %y = kan.layer rational %h, %w2 bias(%c2 : tensor<64xf32>)
        coefficients(%a2, %b2 : tensor<8x6xf32>, tensor<8x4xf32>)
        : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x64xf32>
    return %y : tensor<?x64xf32>
  }
}
