// y = x + bias (bias from the weights file), and the bias itself.
module attributes {moka.weights = "weighted.safetensors"} {
  func.func @forward(%x: tensor<?x3xf32>) -> (tensor<?x3xf32>, tensor<3xf32>) {
    %w = arith.constant dense_resource<bias> : tensor<3xf32>
    %c0 = arith.constant 0 : index
    %n = tensor.dim %x, %c0 : tensor<?x3xf32>
    %e = tensor.empty(%n) : tensor<?x3xf32>
    %r = linalg.generic {
        indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (j)>,
                         affine_map<(i, j) -> (i, j)>],
        iterator_types = ["parallel", "parallel"]}
        ins(%x, %w : tensor<?x3xf32>, tensor<3xf32>) outs(%e : tensor<?x3xf32>) {
    ^bb0(%a: f32, %b: f32, %o: f32):
      %s = arith.addf %a, %b : f32
      linalg.yield %s : f32
    } -> tensor<?x3xf32>
    return %r, %w : tensor<?x3xf32>, tensor<3xf32>
  }
  func.func private @helper(%x: tensor<3xf32>) -> tensor<3xf32> {
    return %x : tensor<3xf32>
  }
}
