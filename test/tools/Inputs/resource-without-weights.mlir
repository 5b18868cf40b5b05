// A weight whose data is nowhere: no moka.weights attribute, no inline
// resource.
func.func @forward() -> tensor<3xf32> {
  %w = arith.constant dense_resource<bias> : tensor<3xf32>
  return %w : tensor<3xf32>
}
