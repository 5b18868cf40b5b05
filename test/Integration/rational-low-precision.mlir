// kan.rational on f16 and bf16 storage (f32 arithmetic), with f32 or
// matching coefficients, against a float64 reference evaluated on the same
// rounded inputs. The tolerance is the storage type's rounding of the result.

// RUN: %python %S/Inputs/check_rational.py %s --function=f16 --shape=32x197x3072 --dtype=f16 --tol=1e-3 | FileCheck %s --check-prefix=F16
// F16: PASS f16

// RUN: %python %S/Inputs/check_rational.py %s --function=bf16 --shape=64x768 --dtype=bf16 --tol=8e-3 | FileCheck %s --check-prefix=BF16
// BF16: PASS bf16

// RUN: %python %S/Inputs/check_rational.py %s --function=f16_coeffs --shape=3x17x48 --dtype=f16 --coeff-dtype=f16 --tol=1e-3 | FileCheck %s --check-prefix=F16C
// F16C: PASS f16_coeffs

// RUN: %python %S/Inputs/check_rational.py %s --function=bf16_dynamic --shape=10x40 --dtype=bf16 --coeff-dtype=bf16 --tol=8e-3 | FileCheck %s --check-prefix=BF16D
// BF16D: PASS bf16_dynamic

func.func @f16(%x: tensor<32x197x3072xf16>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> tensor<32x197x3072xf16> {
  %y = kan.rational %x, %a, %b : tensor<32x197x3072xf16>, tensor<8x6xf32>, tensor<8x4xf32>
  return %y : tensor<32x197x3072xf16>
}

func.func @bf16(%x: tensor<64x768xbf16>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> tensor<64x768xbf16> {
  %y = kan.rational %x, %a, %b : tensor<64x768xbf16>, tensor<8x6xf32>, tensor<8x4xf32>
  return %y : tensor<64x768xbf16>
}

func.func @f16_coeffs(%x: tensor<3x17x48xf16>, %a: tensor<8x6xf16>, %b: tensor<8x4xf16>) -> tensor<3x17x48xf16> {
  %y = kan.rational %x, %a, %b : tensor<3x17x48xf16>, tensor<8x6xf16>, tensor<8x4xf16>
  return %y : tensor<3x17x48xf16>
}

func.func @bf16_dynamic(%x: tensor<?x?xbf16>, %a: tensor<8x6xbf16>, %b: tensor<8x4xbf16>) -> tensor<?x?xbf16> {
  %y = kan.rational %x, %a, %b : tensor<?x?xbf16>, tensor<8x6xbf16>, tensor<8x4xbf16>
  return %y : tensor<?x?xbf16>
}
