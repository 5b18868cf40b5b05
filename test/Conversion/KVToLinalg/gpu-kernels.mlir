// RUN: moka-opt %s --convert-kv-to-linalg=gpu-kernels=true --canonicalize --cse | FileCheck %s
// RUN: moka-opt %s --convert-kv-to-linalg="gpu-kernels=true workgroup-memory=false" --canonicalize --cse | FileCheck %s --check-prefix=CPU

// Decode attention with gpu-kernels on an int4 cache (H_q = 32 over
// H_kv = 8: 4 query heads a block): blocks over (chunks of 256 tokens,
// key/value heads, sequences); the scaled query heads (4 x 128), the
// chunk's scores (4 x 256) and a step's keys (32 x 129) in workgroup
// memory. Per step of 32 tokens: the keys copied, codes dequantized from
// the compressed part or read from the window; one score per thread. Then
// the chunk's maxima and sums, the weighted values with 4 accumulators
// per channel, and the merge of the chunks.
// CHECK-LABEL: func.func @attend
// CHECK:         %[[CHUNKS:.*]] = arith.maxui
// CHECK:         %[[OUTS:.*]] = memref.alloc(%[[CHUNKS]]) : memref<1x8x?x4x128xf32>
// CHECK:         %[[MAX:.*]] = memref.alloc(%[[CHUNKS]]) : memref<1x8x?x4xf32>
// CHECK:         %[[SUM:.*]] = memref.alloc(%[[CHUNKS]]) : memref<1x8x?x4xf32>
// CHECK:         scf.forall (%{{.*}}, %{{.*}}, %{{.*}}) in (%[[CHUNKS]], 8, 1) {
// CHECK:           memref.alloca() : memref<4x128xf32, #gpu.address_space<workgroup>>
// CHECK:           memref.alloca() : memref<4x256xf32, #gpu.address_space<workgroup>>
// CHECK:           memref.alloca() : memref<32x129xf32, #gpu.address_space<workgroup>>
// CHECK:           scf.forall (%{{.*}}) in (256)
// CHECK:           scf.for %{{.*}} = %c0 to %c256 step %c32 {
// CHECK:             scf.forall (%{{.*}}) in (256)
// CHECK:               tensor.extract %arg1
// CHECK:               arith.shrui
// CHECK:               tensor.extract %arg7
// CHECK:             } {mapping = [#gpu.thread<linear_dim_0>]}
// CHECK:             scf.forall (%{{.*}}) in (256)
// CHECK:               scf.for %{{.*}} = %c0 to %c128 step %c1 iter_args
// CHECK:                 math.fma
// CHECK:           scf.forall (%{{.*}}) in (256)
// CHECK:             arith.maximumf
// CHECK:             math.exp
// CHECK:             memref.store %{{.*}}, %[[MAX]]
// CHECK:             memref.store %{{.*}}, %[[SUM]]
// CHECK:           scf.forall (%{{.*}}) in (256)
// CHECK:             scf.for {{.*}} -> (f32, f32, f32, f32)
// CHECK:               tensor.extract %arg4
// CHECK-COUNT-4:       math.fma
// CHECK-COUNT-4:     memref.store %{{.*}}, %[[OUTS]]
// CHECK:         } {mapping = [#gpu.block<x>, #gpu.block<y>, #gpu.block<z>]}
// CHECK:         bufferization.to_tensor %[[OUTS]] restrict writable
// CHECK:         linalg.generic
// CHECK-NOT:     kv.decode_attention
// CPU-LABEL: func.func @attend
// CPU-NOT:     #gpu.address_space
// CPU:         memref.alloc() : memref<4x128xf32>
!Q = !kv.cache<1x8x1024x128, i4, key_group = 32, value_group = 32, window = 128>
func.func @attend(%q: tensor<1x32x128xf32>, %c: !Q) -> tensor<1x32x128xf32> {
  %o = kv.decode_attention %q, %c : tensor<1x32x128xf32>, !Q -> tensor<1x32x128xf32>
  return %o : tensor<1x32x128xf32>
}

// More than 32 query heads per key/value head: the generic form.
// CHECK-LABEL: func.func @many_heads
// CHECK-NOT:     gpu.block
// CHECK:         linalg.generic
!F = !kv.cache<1x1x256x64, f32>
func.func @many_heads(%q: tensor<1x64x64xf32>, %c: !F) -> tensor<1x64x64xf32> {
  %o = kv.decode_attention %q, %c : tensor<1x64x64xf32>, !F -> tensor<1x64x64xf32>
  return %o : tensor<1x64x64xf32>
}
