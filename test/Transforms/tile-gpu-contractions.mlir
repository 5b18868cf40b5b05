// RUN: moka-opt %s --split-input-file --pass-pipeline='builtin.module(func.func(moka-tile-gpu-contractions,canonicalize,cse))' | FileCheck %s

// A matrix product with a transposed right-hand side (C[m, n] += A[m, k]
// B[n, k]): blocks over (ceil(130 / 64) column tiles, row tiles, 1), a
// 32-step loop over k with both tiles staged (each read along k, its
// innermost dimension), 16 fma per step of a thread, and init + sum
// written to a new buffer.
// CHECK-LABEL: func.func @matmul_transposed
// CHECK:         %[[OUT:.*]] = memref.alloc(%{{.*}}) : memref<?x130xf32>
// CHECK:         scf.forall (%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}}, 3, 1)
// CHECK-COUNT-2:   memref.alloca() : memref<32x65xf32, #gpu.address_space<workgroup>>
// CHECK:           memref.alloca() : memref<64x64xf32, #gpu.address_space<workgroup>>
// CHECK:           scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c32
// CHECK:             scf.forall (%[[T:.*]]) in (256)
// CHECK:               arith.remui %{{.*}}, %c32
// CHECK:             scf.forall (%{{.*}}) in (256)
// CHECK:               arith.remui %{{.*}}, %c32
// CHECK:             scf.forall (%{{.*}}) in (256)
// CHECK-COUNT-16:        math.fma
// CHECK:           scf.forall (%{{.*}}) in (256)
// CHECK:             arith.addf
// CHECK:             memref.store %{{.*}}, %[[OUT]]
// CHECK:         } {mapping = [#gpu.block<x>, #gpu.block<y>, #gpu.block<z>]}
// CHECK:         bufferization.to_tensor %[[OUT]] restrict writable
// CHECK-NOT:     linalg.generic
func.func @matmul_transposed(%a: tensor<?x100xf32>, %b: tensor<130x100xf32>,
                             %c: tensor<?x130xf32>) -> tensor<?x130xf32> {
  %y = linalg.generic {
      indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                       affine_map<(m, n, k) -> (n, k)>,
                       affine_map<(m, n, k) -> (m, n)>],
      iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%a, %b : tensor<?x100xf32>, tensor<130x100xf32>)
      outs(%c : tensor<?x130xf32>) {
  ^bb0(%x: f32, %w: f32, %acc: f32):
    %p = arith.mulf %x, %w : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  } -> tensor<?x130xf32>
  return %y : tensor<?x130xf32>
}

// -----

// B[k, n]: its tile is staged along n, its innermost dimension.
// CHECK-LABEL: func.func @matmul
// CHECK:         scf.forall (%{{.*}}, %{{.*}}, %{{.*}}) in
// CHECK:           scf.forall
// CHECK:             arith.remui %{{.*}}, %c32
// CHECK:           scf.forall
// CHECK:             arith.remui %{{.*}}, %c64
func.func @matmul(%a: tensor<8x16xf32>, %b: tensor<16x32xf32>,
                  %c: tensor<8x32xf32>) -> tensor<8x32xf32> {
  %y = linalg.matmul ins(%a, %b : tensor<8x16xf32>, tensor<16x32xf32>)
                     outs(%c : tensor<8x32xf32>) -> tensor<8x32xf32>
  return %y : tensor<8x32xf32>
}

// -----

// Left alone: a body that is not out + x * y, a contraction inside a loop
// (a kernel cannot be launched from a loop body), a dynamic batch.
// CHECK-LABEL: func.func @left_alone
// CHECK-NOT:     gpu.block
// CHECK-COUNT-3: linalg.generic
func.func @left_alone(%a: tensor<8x16xf32>, %b: tensor<16x32xf32>,
                      %c: tensor<8x32xf32>, %n: index,
                      %ba: tensor<?x8x16xf32>, %bb: tensor<?x16x32xf32>,
                      %bc: tensor<?x8x32xf32>)
    -> (tensor<8x32xf32>, tensor<8x32xf32>, tensor<?x8x32xf32>) {
  %max = linalg.generic {
      indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                       affine_map<(m, n, k) -> (k, n)>,
                       affine_map<(m, n, k) -> (m, n)>],
      iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%a, %b : tensor<8x16xf32>, tensor<16x32xf32>)
      outs(%c : tensor<8x32xf32>) {
  ^bb0(%x: f32, %w: f32, %acc: f32):
    %p = arith.mulf %x, %w : f32
    %s = arith.maximumf %acc, %p : f32
    linalg.yield %s : f32
  } -> tensor<8x32xf32>
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %loop = scf.for %i = %c0 to %n step %c1 iter_args(%acc0 = %c) -> tensor<8x32xf32> {
    %r = linalg.generic {
        indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                         affine_map<(m, n, k) -> (k, n)>,
                         affine_map<(m, n, k) -> (m, n)>],
        iterator_types = ["parallel", "parallel", "reduction"]}
        ins(%a, %b : tensor<8x16xf32>, tensor<16x32xf32>)
        outs(%acc0 : tensor<8x32xf32>) {
    ^bb0(%x: f32, %w: f32, %acc: f32):
      %p = arith.mulf %x, %w : f32
      %s = arith.addf %acc, %p : f32
      linalg.yield %s : f32
    } -> tensor<8x32xf32>
    scf.yield %r : tensor<8x32xf32>
  }
  %batched = linalg.generic {
      indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>,
                       affine_map<(b, m, n, k) -> (b, k, n)>,
                       affine_map<(b, m, n, k) -> (b, m, n)>],
      iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%ba, %bb : tensor<?x8x16xf32>, tensor<?x16x32xf32>)
      outs(%bc : tensor<?x8x32xf32>) {
  ^bb0(%x: f32, %w: f32, %acc: f32):
    %p = arith.mulf %x, %w : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  } -> tensor<?x8x32xf32>
  return %max, %loop, %batched : tensor<8x32xf32>, tensor<8x32xf32>, tensor<?x8x32xf32>
}

// -----

// Left alone: loops that are none of row, column, reduction or batch (a
// reduction only the left operand has; a loop only the output has).
// CHECK-LABEL: func.func @unclassified_loops
// CHECK-NOT:     gpu.block
// CHECK-COUNT-2: linalg.generic
func.func @unclassified_loops(%a: tensor<8x16x4xf32>, %b: tensor<16x32xf32>,
                              %c: tensor<8x32xf32>, %a2: tensor<8x16xf32>,
                              %c2: tensor<8x32x3xf32>)
    -> (tensor<8x32xf32>, tensor<8x32x3xf32>) {
  %r = linalg.generic {
      indexing_maps = [affine_map<(m, n, k, r) -> (m, k, r)>,
                       affine_map<(m, n, k, r) -> (k, n)>,
                       affine_map<(m, n, k, r) -> (m, n)>],
      iterator_types = ["parallel", "parallel", "reduction", "reduction"]}
      ins(%a, %b : tensor<8x16x4xf32>, tensor<16x32xf32>)
      outs(%c : tensor<8x32xf32>) {
  ^bb0(%x: f32, %w: f32, %acc: f32):
    %p = arith.mulf %x, %w : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  } -> tensor<8x32xf32>
  %o = linalg.generic {
      indexing_maps = [affine_map<(m, n, p, k) -> (m, k)>,
                       affine_map<(m, n, p, k) -> (k, n)>,
                       affine_map<(m, n, p, k) -> (m, n, p)>],
      iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%a2, %b : tensor<8x16xf32>, tensor<16x32xf32>)
      outs(%c2 : tensor<8x32x3xf32>) {
  ^bb0(%x: f32, %w: f32, %acc: f32):
    %p = arith.mulf %x, %w : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  } -> tensor<8x32x3xf32>
  return %r, %o : tensor<8x32xf32>, tensor<8x32x3xf32>
}
