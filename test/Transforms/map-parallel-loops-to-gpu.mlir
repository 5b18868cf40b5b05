// RUN: moka-opt %s --pass-pipeline='builtin.module(func.func(moka-map-parallel-loops-to-gpu{block-size=128}))' | FileCheck %s

// The innermost dimension is tiled for the threads (thread_x: coalesced),
// dimension 0 goes to block_x, the innermost tiles to block_y; a dynamic
// middle dimension (which could exceed CUDA's 65535 blocks in y or z) runs
// sequentially, as do nested loops.
// CHECK-LABEL: func.func @rows
// CHECK: %[[C128:.*]] = arith.constant 128 : index
// CHECK: %[[STEP:.*]] = arith.muli %{{.*}}, %[[C128]]
// CHECK: scf.parallel (%{{.*}}, %{{.*}}, %{{.*}}) = {{.*}} step (%{{.*}}, %{{.*}}, %[[STEP]])
// CHECK:   scf.parallel (%{{.*}}, %{{.*}}, %{{.*}}) = {{.*}} to (%{{.*}}, %{{.*}}, %[[STEP]])
// CHECK:     scf.if
// CHECK:       scf.parallel
// CHECK:       } {mapping = [#gpu.loop_dim_map<processor = sequential
// CHECK:   } {mapping = [#gpu.loop_dim_map<processor = sequential, {{.*}}>, #gpu.loop_dim_map<processor = sequential, {{.*}}>, #gpu.loop_dim_map<processor = thread_x, {{.*}}>]}
// CHECK: } {mapping = [#gpu.loop_dim_map<processor = block_x, {{.*}}>, #gpu.loop_dim_map<processor = sequential, {{.*}}>, #gpu.loop_dim_map<processor = block_y, {{.*}}>]}
func.func @rows(%m: memref<?x?x?xf32>, %n0: index, %n1: index, %n2: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %one = arith.constant 1.0 : f32
  scf.parallel (%i, %j, %k) = (%c0, %c0, %c0) to (%n0, %n1, %n2) step (%c1, %c1, %c1) {
    scf.parallel (%l) = (%c0) to (%c4) step (%c1) {
      memref.store %one, %m[%i, %j, %k] : memref<?x?x?xf32>
      scf.reduce
    }
    scf.reduce
  }
  return
}

// A short static innermost dimension: threads go along dimension 0.
// CHECK-LABEL: func.func @short_rows
// CHECK: {mapping = [#gpu.loop_dim_map<processor = thread_x, {{.*}}>, #gpu.loop_dim_map<processor = sequential, {{.*}}>]}
// CHECK: {mapping = [#gpu.loop_dim_map<processor = block_x, {{.*}}>, #gpu.loop_dim_map<processor = block_y, {{.*}}>]}
func.func @short_rows(%m: memref<?x4xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %one = arith.constant 1.0 : f32
  scf.parallel (%i, %k) = (%c0, %c0) to (%n, %c4) step (%c1, %c1) {
    memref.store %one, %m[%i, %k] : memref<?x4xf32>
    scf.reduce
  }
  return
}

// A static middle dimension within 65535 goes to block_z.
// CHECK-LABEL: func.func @static_middle
// CHECK: {mapping = [#gpu.loop_dim_map<processor = block_x, {{.*}}>, #gpu.loop_dim_map<processor = block_z, {{.*}}>, #gpu.loop_dim_map<processor = block_y, {{.*}}>]}
func.func @static_middle(%m: memref<?x197x384xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c197 = arith.constant 197 : index
  %c384 = arith.constant 384 : index
  %one = arith.constant 1.0 : f32
  scf.parallel (%i, %j, %k) = (%c0, %c0, %c0) to (%n, %c197, %c384) step (%c1, %c1, %c1) {
    memref.store %one, %m[%i, %j, %k] : memref<?x197x384xf32>
    scf.reduce
  }
  return
}
