func.func @bad(%x: tensor<4x30xf32>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> tensor<4x30xf32> {
  %y = kan.rational %x, %a, %b : tensor<4x30xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %y : tensor<4x30xf32>
}
