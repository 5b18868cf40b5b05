// Reads element %i of a 4-element tensor: for i >= 4 an out-of-bounds read
// of the argument's buffer.
func.func @oob(%t: tensor<4xf32>, %i: tensor<1xi64>) -> tensor<1xf32> {
  %c0 = arith.constant 0 : index
  %iv = tensor.extract %i[%c0] : tensor<1xi64>
  %idx = arith.index_cast %iv : i64 to index
  %v = tensor.extract %t[%idx] : tensor<4xf32>
  %r = tensor.from_elements %v : tensor<1xf32>
  return %r : tensor<1xf32>
}
