// An i1 weight: safetensors' BOOL is not a type moka loads.
module attributes {moka.weights = "bool.safetensors"} {
  func.func @forward() -> tensor<2xi1> {
    %w = arith.constant dense_resource<flag> : tensor<2xi1>
    return %w : tensor<2xi1>
  }
}
