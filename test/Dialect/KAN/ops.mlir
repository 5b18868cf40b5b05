// RUN: moka-opt %s | FileCheck %s
// RUN: moka-opt %s --mlir-print-op-generic | moka-opt | FileCheck %s
// RUN: moka-opt %s --verify-roundtrip

// CHECK-LABEL: func @defaults
func.func @defaults(%x: tensor<32x197x3072xf32>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> tensor<32x197x3072xf32> {
  // CHECK: kan.rational %{{.*}}, %{{.*}}, %{{.*}} : tensor<32x197x3072xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  // CHECK-NOT: m =
  %y = kan.rational %x, %a, %b : tensor<32x197x3072xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %y : tensor<32x197x3072xf32>
}

// CHECK-LABEL: func @degrees_shared_dynamic
func.func @degrees_shared_dynamic(%x: tensor<?x?xbf16>, %a: tensor<1x4xf32>, %b: tensor<4x2xf32>) -> tensor<?x?xbf16> {
  // CHECK: kan.rational %{{.*}}, %{{.*}}, %{{.*}} {m = 3 : i64, n = 2 : i64} : tensor<?x?xbf16>, tensor<1x4xf32>, tensor<4x2xf32>
  %y = kan.rational %x, %a, %b {m = 3 : i64, n = 2 : i64} : tensor<?x?xbf16>, tensor<1x4xf32>, tensor<4x2xf32>
  return %y : tensor<?x?xbf16>
}

// CHECK-LABEL: func @rank1_f16
func.func @rank1_f16(%x: tensor<64xf16>, %a: tensor<2x6xf16>, %b: tensor<2x4xf16>) -> tensor<64xf16> {
  // CHECK: kan.rational {{.*}} : tensor<64xf16>, tensor<2x6xf16>, tensor<2x4xf16>
  %y = kan.rational %x, %a, %b : tensor<64xf16>, tensor<2x6xf16>, tensor<2x4xf16>
  return %y : tensor<64xf16>
}
