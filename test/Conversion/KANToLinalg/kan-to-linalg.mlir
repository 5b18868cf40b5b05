// RUN: moka-opt %s --convert-kan-to-linalg --split-input-file | FileCheck %s

// The input is viewed as [..., G, C/G]; the denominator's absolute value is
// taken once; each coefficient column becomes an operand indexed by the group
// dimension; the rational is one all-parallel generic evaluated by Horner's
// rule with fma.

// CHECK-DAG:   #[[ID4:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-DAG:   #[[GRP:.+]] = affine_map<(d0, d1, d2, d3) -> (d2)>
// CHECK-LABEL: func.func @static
// CHECK-SAME:    (%[[X:.+]]: tensor<32x197x3072xf32>, %[[A:.+]]: tensor<8x6xf32>, %[[B:.+]]: tensor<8x4xf32>)
// CHECK:         %[[XG:.+]] = tensor.expand_shape %[[X]] {{\[}}[0], [1], [2, 3]] output_shape [32, 197, 8, 384]
// CHECK:         %[[BABS:.+]] = linalg.generic {{.*}} ins(%[[B]] : tensor<8x4xf32>)
// CHECK:           math.absf
// CHECK-COUNT-6: tensor.extract_slice %[[A]]{{.*}} to tensor<8xf32>
// CHECK-COUNT-4: tensor.extract_slice %[[BABS]]{{.*}} to tensor<8xf32>
// CHECK:         %[[Y:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [#[[ID4]], #[[GRP]], #[[GRP]], #[[GRP]], #[[GRP]], #[[GRP]], #[[GRP]], #[[GRP]], #[[GRP]], #[[GRP]], #[[GRP]], #[[ID4]]]
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel", "parallel"]
// CHECK-SAME:      ins(%[[XG]],
// CHECK:         ^bb0(%[[V:[a-z0-9_]+]]: f32, %[[A0:[a-z0-9_]+]]: f32, %[[A1:[a-z0-9_]+]]: f32, %[[A2:[a-z0-9_]+]]: f32, %[[A3:[a-z0-9_]+]]: f32, %[[A4:[a-z0-9_]+]]: f32, %[[A5:[a-z0-9_]+]]: f32, %[[B0:[a-z0-9_]+]]: f32, %[[B1:[a-z0-9_]+]]: f32, %[[B2:[a-z0-9_]+]]: f32, %[[B3:[a-z0-9_]+]]: f32, %{{.*}}: f32):
// CHECK:           %[[P4:.+]] = math.fma %[[A5]], %[[V]], %[[A4]]
// CHECK:           %[[P3:.+]] = math.fma %[[P4]], %[[V]], %[[A3]]
// CHECK:           %[[P2:.+]] = math.fma %[[P3]], %[[V]], %[[A2]]
// CHECK:           %[[P1:.+]] = math.fma %[[P2]], %[[V]], %[[A1]]
// CHECK:           %[[P:.+]] = math.fma %[[P1]], %[[V]], %[[A0]]
// CHECK:           %[[ABS:.+]] = math.absf %[[V]]
// CHECK:           %[[Q3:.+]] = math.fma %[[B3]], %[[ABS]], %[[B2]]
// CHECK:           %[[Q2:.+]] = math.fma %[[Q3]], %[[ABS]], %[[B1]]
// CHECK:           %[[Q1:.+]] = math.fma %[[Q2]], %[[ABS]], %[[B0]]
// CHECK:           %[[Q:.+]] = math.fma %[[Q1]], %[[ABS]], %{{.+}}
// CHECK:           %[[R:.+]] = arith.divf %[[P]], %[[Q]]
// CHECK:           linalg.yield %[[R]]
// CHECK:         tensor.collapse_shape %[[Y]] {{\[}}[0], [1], [2, 3]] : tensor<32x197x8x384xf32> into tensor<32x197x3072xf32>
// CHECK-NOT:     kan.rational
func.func @static(%x: tensor<32x197x3072xf32>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> tensor<32x197x3072xf32> {
  %y = kan.rational %x, %a, %b : tensor<32x197x3072xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %y : tensor<32x197x3072xf32>
}

// -----

// A dynamic channel count is checked at run time; a shared numerator is
// broadcast through 0-d operands; bf16 is widened to f32 and rounded once.

// CHECK-DAG:   #[[SCALAR:.+]] = affine_map<(d0, d1, d2) -> ()>
// CHECK-LABEL: func.func @dynamic_shared_bf16
// CHECK-SAME:    (%[[X:.+]]: tensor<?x?xbf16>, %[[A:.+]]: tensor<1x4xf32>, %[[B:.+]]: tensor<4x2xf32>)
// CHECK:         %[[C:.+]] = tensor.dim %[[X]], %c1
// CHECK:         %[[REM:.+]] = arith.remui %[[C]], %c4
// CHECK:         %[[OK:.+]] = arith.cmpi eq, %[[REM]], %c0
// CHECK:         cf.assert %[[OK]], "kan.rational: channel count is not divisible by the number of groups"
// CHECK:         %[[CG:.+]] = arith.divui %[[C]], %c4
// CHECK:         tensor.expand_shape %[[X]] {{\[}}[0], [1, 2]] output_shape [%{{.+}}, 4, %[[CG]]] : tensor<?x?xbf16> into tensor<?x4x?xbf16>
// CHECK-COUNT-4: tensor.extract_slice %[[A]]{{.*}} to tensor<f32>
// CHECK:         linalg.generic
// CHECK-SAME:      #[[SCALAR]], #[[SCALAR]], #[[SCALAR]], #[[SCALAR]]
// CHECK:           arith.extf %{{.*}} : bf16 to f32
// CHECK:           arith.divf
// CHECK:           arith.truncf %{{.*}} : f32 to bf16
func.func @dynamic_shared_bf16(%x: tensor<?x?xbf16>, %a: tensor<1x4xf32>, %b: tensor<4x2xf32>) -> tensor<?x?xbf16> {
  %y = kan.rational %x, %a, %b {m = 3 : i64, n = 2 : i64} : tensor<?x?xbf16>, tensor<1x4xf32>, tensor<4x2xf32>
  return %y : tensor<?x?xbf16>
}

// -----

// f16 coefficients are converted to f32 once, before the element loop.

// CHECK-LABEL: func.func @f16_coefficients
// CHECK:         linalg.generic {{.*}} ins(%{{.*}} : tensor<2x6xf16>) outs(%{{.*}} : tensor<2x6xf32>)
// CHECK:           arith.extf %{{.*}} : f16 to f32
// CHECK:         linalg.generic {{.*}} ins(%{{.*}} : tensor<2x4xf16>) outs(%{{.*}} : tensor<2x4xf32>)
// CHECK:           arith.extf
// CHECK:           math.absf
func.func @f16_coefficients(%x: tensor<64xf16>, %a: tensor<2x6xf16>, %b: tensor<2x4xf16>) -> tensor<64xf16> {
  %y = kan.rational %x, %a, %b : tensor<64xf16>, tensor<2x6xf16>, tensor<2x4xf16>
  return %y : tensor<64xf16>
}
