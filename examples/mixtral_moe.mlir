// A Mixtral-style mixture-of-experts block (HF's MixtralSparseMoeBlock):
// 8 SwiGLU experts of 1024 -> 2048 -> 1024, softmax router, top-2,
// renormalized weights, on 256 tokens. One moe.layer op; the compiler
// decomposes it into router, dispatch, grouped experts and combine.
func.func @forward(%x: tensor<?x1024xf32>, %gate: tensor<8x1024xf32>,
                   %w1: tensor<8x2048x1024xf32>, %w2: tensor<8x1024x2048xf32>,
                   %w3: tensor<8x2048x1024xf32>) -> tensor<?x1024xf32> {
  %y = moe.layer swiglu %x, %gate, %w1, %w2 up(%w3 : tensor<8x2048x1024xf32>)
      {k = 2 : i64, normalize = true}
      : tensor<?x1024xf32>, tensor<8x1024xf32>, tensor<8x2048x1024xf32>,
        tensor<8x1024x2048xf32> -> tensor<?x1024xf32>
  return %y : tensor<?x1024xf32>
}
