// The group-rational activation of KAT's GR-KAN (ViT-B width, 8 groups,
// degrees 5/4) on a batch of 32 images of 197 tokens.
func.func @forward(%x: tensor<32x197x3072xf32>, %numerator: tensor<8x6xf32>,
                   %denominator: tensor<8x4xf32>) -> tensor<32x197x3072xf32> {
  %y = kan.rational %x, %numerator, %denominator
      : tensor<32x197x3072xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %y : tensor<32x197x3072xf32>
}
