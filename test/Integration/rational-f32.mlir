// Execution of kan.rational in f32 against a float64 numpy reference on
// fresh random inputs: the KAT shape, several ranks, dynamic dimensions, a
// shared numerator, other degrees and a serial build.

// RUN: %python %S/Inputs/check_rational.py %s --function=kat --shape=32x197x3072 | FileCheck %s --check-prefix=KAT
// KAT: PASS kat

// RUN: %python %S/Inputs/check_rational.py %s --function=dynamic --shape=7x3x200 --groups=4 | FileCheck %s --check-prefix=DYN
// RUN: %python %S/Inputs/check_rational.py %s --function=dynamic --shape=1x1x4 --groups=4 | FileCheck %s --check-prefix=DYN
// RUN: %python %S/Inputs/check_rational.py %s --function=dynamic --shape=5x2x1028 --groups=4 --serial | FileCheck %s --check-prefix=DYN
// DYN: PASS dynamic

// RUN: %python %S/Inputs/check_rational.py %s --function=rank1 --shape=1000 --groups=8 | FileCheck %s --check-prefix=R1
// R1: PASS rank1

// RUN: %python %S/Inputs/check_rational.py %s --function=rank4 --shape=2x3x5x96 --groups=3 --shared | FileCheck %s --check-prefix=R4
// R4: PASS rank4

// RUN: %python %S/Inputs/check_rational.py %s --function=degrees --shape=33x70 --groups=2 --m=3 --n=2 | FileCheck %s --check-prefix=DEG
// DEG: PASS degrees

// RUN: %python %S/Inputs/check_rational.py %s --function=polynomial --shape=9x16 --groups=1 --m=2 --n=0 | FileCheck %s --check-prefix=POLY
// POLY: PASS polynomial

func.func @kat(%x: tensor<32x197x3072xf32>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> tensor<32x197x3072xf32> {
  %y = kan.rational %x, %a, %b : tensor<32x197x3072xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %y : tensor<32x197x3072xf32>
}

func.func @dynamic(%x: tensor<?x?x?xf32>, %a: tensor<4x6xf32>, %b: tensor<4x4xf32>) -> tensor<?x?x?xf32> {
  %y = kan.rational %x, %a, %b : tensor<?x?x?xf32>, tensor<4x6xf32>, tensor<4x4xf32>
  return %y : tensor<?x?x?xf32>
}

func.func @rank1(%x: tensor<?xf32>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> tensor<?xf32> {
  %y = kan.rational %x, %a, %b : tensor<?xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %y : tensor<?xf32>
}

func.func @rank4(%x: tensor<2x?x5x96xf32>, %a: tensor<1x6xf32>, %b: tensor<3x4xf32>) -> tensor<2x?x5x96xf32> {
  %y = kan.rational %x, %a, %b : tensor<2x?x5x96xf32>, tensor<1x6xf32>, tensor<3x4xf32>
  return %y : tensor<2x?x5x96xf32>
}

func.func @degrees(%x: tensor<33x70xf32>, %a: tensor<2x4xf32>, %b: tensor<2x2xf32>) -> tensor<33x70xf32> {
  %y = kan.rational %x, %a, %b {m = 3 : i64, n = 2 : i64} : tensor<33x70xf32>, tensor<2x4xf32>, tensor<2x2xf32>
  return %y : tensor<33x70xf32>
}

func.func @polynomial(%x: tensor<9x16xf32>, %a: tensor<1x3xf32>, %b: tensor<1x0xf32>) -> tensor<9x16xf32> {
  %y = kan.rational %x, %a, %b {m = 2 : i64, n = 0 : i64} : tensor<9x16xf32>, tensor<1x3xf32>, tensor<1x0xf32>
  return %y : tensor<9x16xf32>
}
