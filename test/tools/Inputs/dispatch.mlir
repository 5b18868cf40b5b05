// moe.dispatch over 4 experts: expert indices come from the caller and are
// checked at run time.
func.func @dispatch(%i: tensor<?x2xi32>) -> (tensor<?xi32>, tensor<5xi32>, tensor<?x2xi32>) {
  %rows, %offsets, %slots = moe.dispatch %i {num_experts = 4 : i64} : tensor<?x2xi32> -> tensor<?xi32>, tensor<5xi32>, tensor<?x2xi32>
  return %rows, %offsets, %slots : tensor<?xi32>, tensor<5xi32>, tensor<?x2xi32>
}
