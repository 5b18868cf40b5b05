// RUN: moka-opt %s --moka-balance-threads | FileCheck %s

// A work-sharing loop whose iterations are loop nests (tiles) gets a dynamic
// schedule; one over single rows of element-wise work (one inner loop, or
// only single-trip loops) keeps the static default; an explicit schedule is
// kept.
// CHECK-LABEL: func.func @tiles
// CHECK:         omp.wsloop schedule(dynamic)
func.func @tiles(%n: index, %m: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %f = arith.constant 1.0 : f32
  omp.parallel {
    omp.wsloop {
      omp.loop_nest (%i) : index = (%c0) to (%n) step (%c1) {
        scf.for %j = %c0 to %n step %c8 {
          scf.for %k = %c0 to %n step %c1 {
            memref.store %f, %m[%j, %k] : memref<?x?xf32>
          }
        }
        omp.yield
      }
    }
    omp.terminator
  }
  return
}

// CHECK-LABEL: func.func @rows
// CHECK:         omp.wsloop {
func.func @rows(%n: index, %m: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f = arith.constant 1.0 : f32
  omp.parallel {
    omp.wsloop {
      omp.loop_nest (%i) : index = (%c0) to (%n) step (%c1) {
        scf.for %j = %c0 to %n step %c1 {
          scf.for %k = %c0 to %c1 step %c1 {
            memref.store %f, %m[%i, %j] : memref<?x?xf32>
          }
        }
        omp.yield
      }
    }
    omp.terminator
  }
  return
}

// CHECK-LABEL: func.func @explicit
// CHECK:         omp.wsloop schedule(static)
func.func @explicit(%n: index, %m: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f = arith.constant 1.0 : f32
  omp.parallel {
    omp.wsloop schedule(static) {
      omp.loop_nest (%i) : index = (%c0) to (%n) step (%c1) {
        scf.for %j = %c0 to %n step %c1 {
          scf.for %k = %c0 to %n step %c1 {
            memref.store %f, %m[%j, %k] : memref<?x?xf32>
          }
        }
        omp.yield
      }
    }
    omp.terminator
  }
  return
}
