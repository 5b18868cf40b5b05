// RUN: moka-opt %s --moka-cpu-codegen | FileCheck %s --check-prefix=CODEGEN
// RUN: moka-opt %s --moka-cpu-pipeline | FileCheck %s --check-prefix=LLVM
// RUN: moka-opt %s --moka-cpu-pipeline="parallel=false" | FileCheck %s --check-prefix=SERIAL
// RUN: moka-opt %s --moka-cpu-pipeline="vector-size=16" | FileCheck %s --check-prefix=VEC16

// On tensors: rows distributed with scf.forall, 64-wide vector tiles (unit
// dimensions folded away).
// CODEGEN-LABEL: func.func @kat
// CODEGEN:         scf.forall (%{{.*}}, %{{.*}}, %{{.*}}) in (32, 197, 8)
// CODEGEN:           scf.for %{{.*}} = %c0 to %c384 step %c64
// CODEGEN:             vector.transfer_read {{.*}} : tensor<1x1x1x64xf32>, vector<64xf32>
// CODEGEN:             math.fma {{.*}} : vector<64xf32>
// CODEGEN:             arith.divf {{.*}} : vector<64xf32>
// CODEGEN:             vector.transfer_write
// CODEGEN-NOT:     kan.rational

// Dynamic extents are vectorized with masks.
// CODEGEN-LABEL: func.func @dynamic
// CODEGEN:         vector.create_mask
// CODEGEN:         vector.transfer_read {{.*}}, %{{.*}} : tensor<1x1x?xf32>, vector<1x1x64xf32>

// Fully lowered: OpenMP threads, vector FMAs, nothing of the input dialects.
// LLVM-LABEL: llvm.func @kat
// LLVM:         omp.parallel
// LLVM:         omp.wsloop
// LLVM:         llvm.intr.fma({{.*}}) : (vector<64xf32>, vector<64xf32>, vector<64xf32>) -> vector<64xf32>
// LLVM:         llvm.fdiv {{.*}} : vector<64xf32>
// LLVM-LABEL: llvm.func @dynamic
// LLVM:         llvm.intr.masked.load
// LLVM:         llvm.intr.masked.store
// LLVM-NOT:     linalg.
// LLVM-NOT:     kan.
// LLVM-NOT:     scf.
// LLVM-NOT:     memref.

// SERIAL-LABEL: llvm.func @kat
// SERIAL-NOT:   omp.parallel
// SERIAL:       llvm.intr.fma

// VEC16-LABEL: llvm.func @kat
// VEC16:         llvm.intr.fma({{.*}}) : (vector<16xf32>, vector<16xf32>, vector<16xf32>) -> vector<16xf32>

func.func @kat(%x: tensor<32x197x3072xf32>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> tensor<32x197x3072xf32> {
  %y = kan.rational %x, %a, %b : tensor<32x197x3072xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %y : tensor<32x197x3072xf32>
}

func.func @dynamic(%x: tensor<?x?xf32>, %a: tensor<4x6xf32>, %b: tensor<4x4xf32>) -> tensor<?x?xf32> {
  %y = kan.rational %x, %a, %b : tensor<?x?xf32>, tensor<4x6xf32>, tensor<4x4xf32>
  return %y : tensor<?x?xf32>
}
