// One public function for the GPU target tests.
func.func @rational(%x: tensor<?x16xf32>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> tensor<?x16xf32> {
  %y = kan.rational %x, %a, %b : tensor<?x16xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %y : tensor<?x16xf32>
}
