// Functions moka-run cannot call: argument or result types other than
// ranked tensors of f64, f32, f16, bf16, i1, i8, i32 or i64.
func.func @i16(%x: tensor<4xi16>) -> tensor<4xi16> {
  return %x : tensor<4xi16>
}

func.func @unranked(%x: tensor<*xf32>) -> tensor<*xf32> {
  return %x : tensor<*xf32>
}

func.func @memref(%x: memref<4xf32>) {
  return
}

func.func @scalar_result(%x: tensor<4xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  %v = tensor.extract %x[%c0] : tensor<4xf32>
  return %v : f32
}

func.func private @declaration(%x: tensor<4xf32>) -> tensor<4xf32>
