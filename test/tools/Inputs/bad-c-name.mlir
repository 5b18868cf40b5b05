// A public function whose name is not a C identifier.
func.func @a.b(%x: tensor<2xf32>) -> tensor<2xf32> {
  return %x : tensor<2xf32>
}
