// RUN: moka-opt %s | FileCheck %s
// RUN: moka-opt %s --mlir-print-op-generic | moka-opt | FileCheck %s
// RUN: moka-opt %s --verify-roundtrip

// CHECK-LABEL: func @bases
func.func @bases(%x: tensor<?x32xf32>, %w: tensor<64x32xf32>, %b: tensor<64xf32>,
                 %num: tensor<8x6xf32>, %den: tensor<8x4xf32>,
                 %ws: tensor<64x32x8xf32>, %wr: tensor<64x32x10xf32>,
                 %wc: tensor<64x32x4xf32>, %wb: tensor<64x32xf32>) {
  // CHECK: kan.layer rational %{{.*}}, %{{.*}} bias(%{{.*}} : tensor<64xf32>) coefficients(%{{.*}}, %{{.*}} : tensor<8x6xf32>, tensor<8x4xf32>) : tensor<?x32xf32>, tensor<64x32xf32> -> tensor<?x64xf32>
  %0 = kan.layer rational %x, %w bias(%b : tensor<64xf32>) coefficients(%num, %den : tensor<8x6xf32>, tensor<8x4xf32>) : tensor<?x32xf32>, tensor<64x32xf32> -> tensor<?x64xf32>
  // CHECK: kan.layer bspline %{{.*}}, %{{.*}} base(%{{.*}} : tensor<64x32xf32>) {grid_max = 2.000000e+00 : f64, grid_min = -2.000000e+00 : f64, grid_size = 5 : i64, order = 3 : i64}
  %1 = kan.layer bspline %x, %ws base(%wb : tensor<64x32xf32>) {grid_size = 5 : i64, order = 3 : i64, grid_min = -2.0 : f64, grid_max = 2.0 : f64} : tensor<?x32xf32>, tensor<64x32x8xf32> -> tensor<?x64xf32>
  // CHECK: kan.layer rbf %{{.*}}, %{{.*}} bias(%{{.*}} : tensor<64xf32>) base(%{{.*}} : tensor<64x32xf32>) {grid_size = 10 : i64}
  %2 = kan.layer rbf %x, %wr bias(%b : tensor<64xf32>) base(%wb : tensor<64x32xf32>) {grid_size = 10 : i64} : tensor<?x32xf32>, tensor<64x32x10xf32> -> tensor<?x64xf32>
  // CHECK: kan.layer chebyshev %{{.*}}, %{{.*}} : tensor<?x32xf32>, tensor<64x32x4xf32> -> tensor<?x64xf32>
  %3 = kan.layer chebyshev %x, %wc : tensor<?x32xf32>, tensor<64x32x4xf32> -> tensor<?x64xf32>
  // CHECK: kan.layer fourier %{{.*}}, %{{.*}} {grid_size = 5 : i64} : tensor<?x32xf32>, tensor<64x32x10xf32> -> tensor<?x64xf32>
  %4 = kan.layer fourier %x, %wr {grid_size = 5 : i64} : tensor<?x32xf32>, tensor<64x32x10xf32> -> tensor<?x64xf32>
  // CHECK: kan.rational_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<?x32xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  %dx, %da, %db = kan.rational_grad %x, %x, %num, %den : tensor<?x32xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return
}
