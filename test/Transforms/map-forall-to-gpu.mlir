// RUN: moka-opt %s --split-input-file --verify-diagnostics --pass-pipeline='builtin.module(func.func(moka-map-forall-to-gpu))' | FileCheck %s

// A block loop (dynamic x, static y) becomes a gpu.launch over that grid;
// its workgroup allocas become the launch's workgroup buffers; the thread
// loops (128 and 256 threads: the block has 256) are mapped to thread ids,
// the smaller one predicated, with a barrier after each.
// CHECK-LABEL: func.func @kernel
// CHECK-SAME:    (%[[IN:.*]]: memref<?xf32>, %[[OUT:.*]]: memref<?xf32>, %[[N:.*]]: index)
// CHECK-DAG:     %[[C1:.*]] = arith.constant 1 : index
// CHECK-DAG:     %[[C4:.*]] = arith.constant 4 : index
// CHECK-DAG:     %[[C256:.*]] = arith.constant 256 : index
// CHECK:         gpu.launch blocks(%[[BX:.*]], %[[BY:.*]], %{{.*}}) in (%{{.*}} = %[[N]], %{{.*}} = %[[C4]], %{{.*}} = %[[C1]]) threads(%{{.*}}) in (%{{.*}} = %[[C256]], %{{.*}} = %[[C1]], %{{.*}} = %[[C1]]) workgroup(%[[TILE:.*]] : memref<256xf32, #gpu.address_space<workgroup>>)
// CHECK-NOT:     memref.alloca
// CHECK:           %[[TX:.*]] = gpu.thread_id{{ +}}x
// CHECK:           %[[SMALL:.*]] = arith.cmpi ult, %{{.*}}, %c128
// CHECK:           scf.if %[[SMALL]]
// CHECK:             memref.store %{{.*}}, %[[TILE]]
// CHECK:           gpu.barrier
// CHECK:           gpu.thread_id{{ +}}x
// CHECK-NOT:       scf.if
// CHECK:           memref.load %[[TILE]]
// CHECK:           memref.store %{{.*}}, %[[OUT]]
// CHECK:           gpu.barrier
// CHECK:           gpu.terminator
// CHECK-NOT:     scf.forall
func.func @kernel(%in: memref<?xf32>, %out: memref<?xf32>, %n: index) {
  scf.forall (%x, %y) in (%n, 4) {
    %tile = memref.alloca() : memref<256xf32, #gpu.address_space<workgroup>>
    scf.forall (%t) in (128) {
      %v = memref.load %in[%t] : memref<?xf32>
      memref.store %v, %tile[%t] : memref<256xf32, #gpu.address_space<workgroup>>
    } {mapping = [#gpu.thread<linear_dim_0>]}
    scf.forall (%t) in (256) {
      %v = memref.load %tile[%t] : memref<256xf32, #gpu.address_space<workgroup>>
      memref.store %v, %out[%t] : memref<?xf32>
    } {mapping = [#gpu.thread<linear_dim_0>]}
  } {mapping = [#gpu.block<x>, #gpu.block<y>]}
  return
}

// -----

// Loops without a block mapping are left alone.
// CHECK-LABEL: func.func @unmapped
// CHECK-NOT:     gpu.launch
// CHECK:         scf.forall
func.func @unmapped(%out: memref<8xf32>) {
  %cst = arith.constant 0.0 : f32
  scf.forall (%i) in (8) {
    memref.store %cst, %out[%i] : memref<8xf32>
  }
  return
}

// -----

func.func @dynamic_threads(%out: memref<?xf32>, %n: index) {
  %cst = arith.constant 0.0 : f32
  scf.forall (%x) in (4) {
    // expected-error @below {{moka-map-forall-to-gpu: thread loops must have static sizes}}
    scf.forall (%t) in (%n) {
      memref.store %cst, %out[%t] : memref<?xf32>
    } {mapping = [#gpu.thread<linear_dim_0>]}
  } {mapping = [#gpu.block<x>]}
  return
}

// -----

func.func @too_many_threads(%out: memref<?xf32>) {
  %cst = arith.constant 0.0 : f32
  // expected-error @below {{moka-map-forall-to-gpu: 2048 threads per block (at most 1024)}}
  scf.forall (%x) in (4) {
    scf.forall (%t) in (2048) {
      memref.store %cst, %out[%t] : memref<?xf32>
    } {mapping = [#gpu.thread<linear_dim_0>]}
  } {mapping = [#gpu.block<x>]}
  return
}

// -----

func.func @nested_workgroup_buffer(%out: memref<?xf32>, %c: i1) {
  %cst = arith.constant 0.0 : f32
  scf.forall (%x) in (4) {
    scf.if %c {
      // expected-error @below {{moka-map-forall-to-gpu: workgroup buffers must be allocated at the top of the block loop}}
      %tile = memref.alloca() : memref<256xf32, #gpu.address_space<workgroup>>
      scf.forall (%t) in (256) {
        memref.store %cst, %tile[%t] : memref<256xf32, #gpu.address_space<workgroup>>
      } {mapping = [#gpu.thread<linear_dim_0>]}
    }
  } {mapping = [#gpu.block<x>]}
  return
}

// -----

func.func @not_normalized(%out: memref<?xf32>) {
  %cst = arith.constant 0.0 : f32
  // expected-error @below {{moka-map-forall-to-gpu: block loops must be on buffers, from 0 with step 1}}
  scf.forall (%x) = (2) to (8) step (2) {
    memref.store %cst, %out[%x] : memref<?xf32>
  } {mapping = [#gpu.block<x>]}
  return
}

// -----

func.func @same_dimension_twice(%out: memref<?xf32>) {
  %cst = arith.constant 0.0 : f32
  // expected-error @below {{moka-map-forall-to-gpu: block loops must map to distinct dimensions from x on}}
  scf.forall (%x, %y) in (4, 4) {
    memref.store %cst, %out[%x] : memref<?xf32>
  } {mapping = [#gpu.block<x>, #gpu.block<x>]}
  return
}

// -----

func.func @nested_block_loop(%out: memref<?xf32>) {
  %cst = arith.constant 0.0 : f32
  scf.forall (%i) in (4) {
    // expected-error @below {{moka-map-forall-to-gpu: a block loop nested in a parallel loop}}
    scf.forall (%x) in (4) {
      memref.store %cst, %out[%x] : memref<?xf32>
    } {mapping = [#gpu.block<x>]}
  }
  return
}

// -----

// A block loop on (y, x) with thread loops in a branch and a sequential loop
// (the shape of the staged kernels): the barriers stay inside the loop,
// after each thread loop.
// CHECK-LABEL: func.func @branch_and_steps
// CHECK:         gpu.launch blocks(%[[BX:.*]], %[[BY:.*]], %{{.*}}) in (%{{.*}} = %c3, %{{.*}} = %c5, %{{.*}} = %c1{{.*}})
// CHECK:           memref.load %{{.*}}[%[[BY]]]
// CHECK:           memref.load %{{.*}}[%[[BX]]]
// CHECK:           scf.if
// CHECK:             scf.for
// CHECK:               gpu.thread_id{{ +}}x
// CHECK:               memref.store
// CHECK:               gpu.barrier
// CHECK:               gpu.thread_id{{ +}}x
// CHECK:               memref.load
// CHECK:               memref.store
// CHECK:               gpu.barrier
// CHECK:             }
// CHECK:           }
func.func @branch_and_steps(%in: memref<?xf32>, %out: memref<?xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  scf.forall (%y, %x) in (5, 3) {
    %tile = memref.alloca() : memref<64xf32, #gpu.address_space<workgroup>>
    %a = memref.load %in[%y] : memref<?xf32>
    %b = memref.load %in[%x] : memref<?xf32>
    %go = arith.cmpf olt, %a, %b : f32
    scf.if %go {
      scf.for %s = %c0 to %n step %c1 {
        scf.forall (%t) in (64) {
          memref.store %a, %tile[%t] : memref<64xf32, #gpu.address_space<workgroup>>
        } {mapping = [#gpu.thread<x>]}
        scf.forall (%t) in (64) {
          %v = memref.load %tile[%t] : memref<64xf32, #gpu.address_space<workgroup>>
          memref.store %v, %out[%t] : memref<?xf32>
        } {mapping = [#gpu.thread<x>]}
      }
    }
  } {mapping = [#gpu.block<y>, #gpu.block<x>]}
  return
}

// -----

func.func @nested_thread_loops(%out: memref<?xf32>) {
  %cst = arith.constant 0.0 : f32
  scf.forall (%x) in (4) {
    scf.forall (%t) in (16) {
      // expected-error @below {{moka-map-forall-to-gpu: thread loops must not nest}}
      scf.forall (%u) in (16) {
        memref.store %cst, %out[%u] : memref<?xf32>
      } {mapping = [#gpu.thread<linear_dim_0>]}
    } {mapping = [#gpu.thread<linear_dim_0>]}
  } {mapping = [#gpu.block<x>]}
  return
}

// -----

func.func @two_dimensional_threads(%out: memref<?x?xf32>) {
  %cst = arith.constant 0.0 : f32
  scf.forall (%x) in (4) {
    // expected-error @below {{moka-map-forall-to-gpu: thread loops must be one-dimensional, on #gpu.thread<x> or <linear_dim_0>}}
    scf.forall (%t, %u) in (16, 16) {
      memref.store %cst, %out[%t, %u] : memref<?x?xf32>
    } {mapping = [#gpu.thread<y>, #gpu.thread<x>]}
  } {mapping = [#gpu.block<x>]}
  return
}

// -----

func.func @write_outside_thread_loops(%out: memref<?xf32>, %c: i1) {
  %cst = arith.constant 0.0 : f32
  scf.forall (%x) in (4) {
    scf.if %c {
      // expected-error @below {{moka-map-forall-to-gpu: a write in a block loop outside its thread loops}}
      memref.store %cst, %out[%x] : memref<?xf32>
    }
    scf.forall (%t) in (16) {
      memref.store %cst, %out[%t] : memref<?xf32>
    } {mapping = [#gpu.thread<linear_dim_0>]}
  } {mapping = [#gpu.block<x>]}
  return
}
