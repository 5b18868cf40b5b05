// RUN: moka-opt %s -split-input-file -verify-diagnostics

// Every verifier message of kan.layer and kan.rational_grad.

func.func @layer_rank0(%x: tensor<f32>, %w: tensor<8x1x8xf32>) -> tensor<f32> {
  // expected-error @+1 {{'kan.layer' op input must have rank >= 1 (channels last), got rank 0}}
  %y = kan.layer bspline %x, %w : tensor<f32>, tensor<8x1x8xf32> -> tensor<f32>
  return %y : tensor<f32>
}

// -----

func.func @weight_type(%x: tensor<4x16xf32>, %w: tensor<8x16x8xf16>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op weight element type 'f16' differs from the input element type 'f32'}}
  %y = kan.layer bspline %x, %w : tensor<4x16xf32>, tensor<8x16x8xf16> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @bias_type(%x: tensor<4x16xf32>, %w: tensor<8x16x8xf32>, %b: tensor<8xbf16>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op bias element type 'bf16' differs from the input element type 'f32'}}
  %y = kan.layer bspline %x, %w bias(%b : tensor<8xbf16>) : tensor<4x16xf32>, tensor<8x16x8xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @base_type(%x: tensor<4x16xf32>, %w: tensor<8x16x8xf32>, %b: tensor<8x16xf16>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op base_weight element type 'f16' differs from the input element type 'f32'}}
  %y = kan.layer bspline %x, %w base(%b : tensor<8x16xf16>) : tensor<4x16xf32>, tensor<8x16x8xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @result_type(%x: tensor<4x16xf32>, %w: tensor<8x16x8xf32>) -> tensor<4x8xf16> {
  // expected-error @+1 {{'kan.layer' op result element type 'f16' differs from the input element type 'f32'}}
  %y = kan.layer bspline %x, %w : tensor<4x16xf32>, tensor<8x16x8xf32> -> tensor<4x8xf16>
  return %y : tensor<4x8xf16>
}

// -----

func.func @grid_on_chebyshev(%x: tensor<4x16xf32>, %w: tensor<8x16x4xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op 'grid_size' does not apply to the chebyshev basis}}
  %y = kan.layer chebyshev %x, %w {grid_size = 4 : i64} : tensor<4x16xf32>, tensor<8x16x4xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @order_on_rbf(%x: tensor<4x16xf32>, %w: tensor<8x16x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op 'order' does not apply to the rbf basis}}
  %y = kan.layer rbf %x, %w {order = 2 : i64} : tensor<4x16xf32>, tensor<8x16x8xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @degree_on_fourier(%x: tensor<4x16xf32>, %w: tensor<8x16x10xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op 'degree' does not apply to the fourier basis}}
  %y = kan.layer fourier %x, %w {degree = 2 : i64} : tensor<4x16xf32>, tensor<8x16x10xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @range_on_fourier(%x: tensor<4x16xf32>, %w: tensor<8x16x10xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op 'grid_min' and 'grid_max' do not apply to the fourier basis}}
  %y = kan.layer fourier %x, %w {grid_min = -1.0 : f64} : tensor<4x16xf32>, tensor<8x16x10xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @rbf_grid_one(%x: tensor<4x16xf32>, %w: tensor<8x16x1xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op grid_size must be in [2, 1024] for the rbf basis, got 1}}
  %y = kan.layer rbf %x, %w {grid_size = 1 : i64} : tensor<4x16xf32>, tensor<8x16x1xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @bspline_grid_zero(%x: tensor<4x16xf32>, %w: tensor<8x16x3xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op grid_size must be in [1, 1024] for the bspline basis, got 0}}
  %y = kan.layer bspline %x, %w {grid_size = 0 : i64} : tensor<4x16xf32>, tensor<8x16x3xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @order_range(%x: tensor<4x16xf32>, %w: tensor<8x16x14xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op order must be in [0, 8], got 9}}
  %y = kan.layer bspline %x, %w {order = 9 : i64} : tensor<4x16xf32>, tensor<8x16x14xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @degree_range(%x: tensor<4x16xf32>, %w: tensor<8x16x4xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op degree must be in [0, 64], got -1}}
  %y = kan.layer chebyshev %x, %w {degree = -1 : i64} : tensor<4x16xf32>, tensor<8x16x4xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @grid_range(%x: tensor<4x16xf32>, %w: tensor<8x16x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op grid range must be finite with grid_min < grid_max, got [1.000000e+00, 1.000000e+00]}}
  %y = kan.layer bspline %x, %w {grid_min = 1.0 : f64, grid_max = 1.0 : f64} : tensor<4x16xf32>, tensor<8x16x8xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @grid_range_nan(%x: tensor<4x16xf32>, %w: tensor<8x16x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op grid range must be finite with grid_min < grid_max, got [nan, 2.000000e+00]}}
  %y = kan.layer rbf %x, %w {grid_min = 0x7FF8000000000000 : f64} : tensor<4x16xf32>, tensor<8x16x8xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @rational_no_coefficients(%x: tensor<4x16xf32>, %w: tensor<8x16xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op the rational basis needs coefficients(numerator, denominator)}}
  %y = kan.layer rational %x, %w : tensor<4x16xf32>, tensor<8x16xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @coefficients_on_rbf(%x: tensor<4x16xf32>, %w: tensor<8x16x8xf32>, %a: tensor<1x6xf32>, %b: tensor<1x4xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op coefficients apply only to the rational basis, not to rbf}}
  %y = kan.layer rbf %x, %w coefficients(%a, %b : tensor<1x6xf32>, tensor<1x4xf32>) : tensor<4x16xf32>, tensor<8x16x8xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @rational_base(%x: tensor<4x16xf32>, %w: tensor<8x16xf32>, %wb: tensor<8x16xf32>, %a: tensor<1x6xf32>, %b: tensor<1x4xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op the rational basis has no base branch}}
  %y = kan.layer rational %x, %w base(%wb : tensor<8x16xf32>) coefficients(%a, %b : tensor<1x6xf32>, tensor<1x4xf32>) : tensor<4x16xf32>, tensor<8x16xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @rational_weight_rank(%x: tensor<4x16xf32>, %w: tensor<8x16x1xf32>, %a: tensor<1x6xf32>, %b: tensor<1x4xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op weight of the rational basis must have rank 2 [Cout, Cin], got 'tensor<8x16x1xf32>'}}
  %y = kan.layer rational %x, %w coefficients(%a, %b : tensor<1x6xf32>, tensor<1x4xf32>) : tensor<4x16xf32>, tensor<8x16x1xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @spline_weight_rank(%x: tensor<4x16xf32>, %w: tensor<8x16xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op weight of the bspline basis must have rank 3 [Cout, Cin, K], got 'tensor<8x16xf32>'}}
  %y = kan.layer bspline %x, %w : tensor<4x16xf32>, tensor<8x16xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @weight_cin(%x: tensor<4x16xf32>, %w: tensor<8x12x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op weight has 12 input channels, the input has 16}}
  %y = kan.layer bspline %x, %w : tensor<4x16xf32>, tensor<8x12x8xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @weight_k(%x: tensor<4x16xf32>, %w: tensor<8x16x7xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op weight has 7 basis functions per input, the bspline basis has K = 8}}
  %y = kan.layer bspline %x, %w : tensor<4x16xf32>, tensor<8x16x7xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @weight_k_fourier(%x: tensor<4x16xf32>, %w: tensor<8x16x6xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op weight has 6 basis functions per input, the fourier basis has K = 8}}
  %y = kan.layer fourier %x, %w {grid_size = 4 : i64} : tensor<4x16xf32>, tensor<8x16x6xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @bias_shape(%x: tensor<4x16xf32>, %w: tensor<8x16x8xf32>, %b: tensor<7xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op bias must be [Cout] = [8], got 'tensor<7xf32>'}}
  %y = kan.layer rbf %x, %w bias(%b : tensor<7xf32>) : tensor<4x16xf32>, tensor<8x16x8xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @base_shape(%x: tensor<4x16xf32>, %w: tensor<8x16x8xf32>, %wb: tensor<8x15xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op base_weight must be [Cout, Cin] like the first two dimensions of weight, got 'tensor<8x15xf32>'}}
  %y = kan.layer rbf %x, %w base(%wb : tensor<8x15xf32>) : tensor<4x16xf32>, tensor<8x16x8xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @result_rank(%x: tensor<4x16xf32>, %w: tensor<8x16x8xf32>) -> tensor<4x1x8xf32> {
  // expected-error @+1 {{'kan.layer' op result must have the rank of the input (2), got 'tensor<4x1x8xf32>'}}
  %y = kan.layer rbf %x, %w : tensor<4x16xf32>, tensor<8x16x8xf32> -> tensor<4x1x8xf32>
  return %y : tensor<4x1x8xf32>
}

// -----

func.func @result_rows(%x: tensor<4x16xf32>, %w: tensor<8x16x8xf32>) -> tensor<5x8xf32> {
  // expected-error @+1 {{'kan.layer' op result dimension 0 is 5, the input's is 4}}
  %y = kan.layer rbf %x, %w : tensor<4x16xf32>, tensor<8x16x8xf32> -> tensor<5x8xf32>
  return %y : tensor<5x8xf32>
}

// -----

func.func @result_channels(%x: tensor<4x16xf32>, %w: tensor<8x16x8xf32>) -> tensor<4x9xf32> {
  // expected-error @+1 {{'kan.layer' op result has 9 channels, the weight has Cout = 8}}
  %y = kan.layer rbf %x, %w : tensor<4x16xf32>, tensor<8x16x8xf32> -> tensor<4x9xf32>
  return %y : tensor<4x9xf32>
}

// -----

func.func @rational_degree(%x: tensor<4x16xf32>, %w: tensor<8x16xf32>, %a: tensor<1x18xf32>, %b: tensor<1x4xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op rational degrees must be in [0, 16]: numerator 'tensor<1x18xf32>', denominator 'tensor<1x4xf32>'}}
  %y = kan.layer rational %x, %w coefficients(%a, %b : tensor<1x18xf32>, tensor<1x4xf32>) : tensor<4x16xf32>, tensor<8x16xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @rational_groups(%x: tensor<4x16xf32>, %w: tensor<8x16xf32>, %a: tensor<3x6xf32>, %b: tensor<3x4xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op channel count C = 16 is not divisible by the number of groups G = 3}}
  %y = kan.layer rational %x, %w coefficients(%a, %b : tensor<3x6xf32>, tensor<3x4xf32>) : tensor<4x16xf32>, tensor<8x16xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @grad_degree(%x: tensor<4x32xf32>, %a: tensor<8x5xf32>, %b: tensor<8x4xf32>) -> tensor<4x32xf32> {
  // expected-error @+1 {{'kan.rational_grad' op numerator has 5 coefficients per group, expected m + 1 = 6}}
  %dx, %da, %db = kan.rational_grad %x, %x, %a, %b : tensor<4x32xf32>, tensor<8x5xf32>, tensor<8x4xf32>
  return %dx : tensor<4x32xf32>
}

// -----

func.func @grad_groups(%x: tensor<4x30xf32>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> tensor<4x30xf32> {
  // expected-error @+1 {{'kan.rational_grad' op channel count C = 30 is not divisible by the number of groups G = 8}}
  %dx, %da, %db = kan.rational_grad %x, %x, %a, %b : tensor<4x30xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %dx : tensor<4x30xf32>
}

// -----

func.func @grad_types(%x: tensor<4x32xf32>, %dy: tensor<4x32xf16>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> tensor<4x32xf32> {
  // expected-error @+1 {{'kan.rational_grad' op failed to verify that all of {input, grad_output, grad_input} have same type}}
  %dx, %da, %db = "kan.rational_grad"(%x, %dy, %a, %b) : (tensor<4x32xf32>, tensor<4x32xf16>, tensor<8x6xf32>, tensor<8x4xf32>) -> (tensor<4x32xf32>, tensor<8x6xf32>, tensor<8x4xf32>)
  return %dx : tensor<4x32xf32>
}

// -----

func.func @numerator_alone(%x: tensor<4x16xf32>, %w: tensor<8x16xf32>, %a: tensor<1x6xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op numerator and denominator come together: got only the numerator}}
  %y = "kan.layer"(%x, %w, %a) <{basis = 0 : i32, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0>}> : (tensor<4x16xf32>, tensor<8x16xf32>, tensor<1x6xf32>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @denominator_alone(%x: tensor<4x16xf32>, %w: tensor<8x16x8xf32>, %b: tensor<1x4xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op numerator and denominator come together: got only the denominator}}
  %y = "kan.layer"(%x, %w, %b) <{basis = 1 : i32, operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 1>}> : (tensor<4x16xf32>, tensor<8x16x8xf32>, tensor<1x4xf32>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @weight_rank0(%x: tensor<4x16xf32>, %w: tensor<f32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'kan.layer' op weight of the bspline basis must have rank 3 [Cout, Cin, K], got 'tensor<f32>'}}
  %y = kan.layer bspline %x, %w : tensor<4x16xf32>, tensor<f32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}
