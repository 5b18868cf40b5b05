// KAT's feed-forward block (the KAN that replaces a ViT's MLP): two
// group-rational KAN layers, "rational, then linear",
//
//   y = fc2(rational2(fc1(rational1(x))))
//
// at the size of KAT-S (embedding 384, hidden 1536, 8 groups, degrees (5, 4))
// on 8 images of 197 tokens. moka fuses both rationals into the matrix
// products: the whole block runs as one loop over tiles of rows, and neither
// activation nor the hidden layer is ever written to memory in full.
func.func @forward(%x: tensor<?x197x384xf32>,
                   %a1: tensor<8x6xf32>, %b1: tensor<8x4xf32>,
                   %w1: tensor<1536x384xf32>, %c1: tensor<1536xf32>,
                   %a2: tensor<8x6xf32>, %b2: tensor<8x4xf32>,
                   %w2: tensor<384x1536xf32>, %c2: tensor<384xf32>)
    -> tensor<?x197x384xf32> {
  %h = kan.layer rational %x, %w1 bias(%c1 : tensor<1536xf32>)
      coefficients(%a1, %b1 : tensor<8x6xf32>, tensor<8x4xf32>)
      : tensor<?x197x384xf32>, tensor<1536x384xf32> -> tensor<?x197x1536xf32>
  %y = kan.layer rational %h, %w2 bias(%c2 : tensor<384xf32>)
      coefficients(%a2, %b2 : tensor<8x6xf32>, tensor<8x4xf32>)
      : tensor<?x197x1536xf32>, tensor<384x1536xf32> -> tensor<?x197x384xf32>
  return %y : tensor<?x197x384xf32>
}
