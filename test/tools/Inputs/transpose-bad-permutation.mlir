// A malformed dense array in linalg.transpose: LLVM 22's parser reports
// "expected ']'" and then sets a null attribute and crashes if the parse
// carries on.
func.func @f(%w: tensor<4x64x32xf32>, %e: tensor<4x32x64xf32>) -> tensor<4x32x64xf32> {
  %t = linalg.transpose ins(%w : tensor<4x64x32xf32>) outs(%e : tensor<4x32x64xf32>) permutation = [0, 2, 1M
  return %t : tensor<4x32x64xf32>
}
