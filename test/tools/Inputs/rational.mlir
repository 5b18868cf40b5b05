func.func @rational(%x: tensor<4x16xf32>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> tensor<4x16xf32> {
  %y = kan.rational %x, %a, %b : tensor<4x16xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %y : tensor<4x16xf32>
}

func.func @dynamic(%x: tensor<?x?xf32>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> tensor<?x?xf32> {
  %y = kan.rational %x, %a, %b : tensor<?x?xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %y : tensor<?x?xf32>
}

func.func @scalar(%x: f32) -> f32 {
  return %x : f32
}
