// RUN: moka-opt %s --pass-pipeline='builtin.module(func.func(moka-approximate-math))' | FileCheck %s

// f32 exp, scalar or vector, becomes branch-free polynomial code; other
// math ops and f64 exp are left alone.
// CHECK-LABEL: func.func @f
// CHECK-NOT: math.exp %{{.*}} : f32
// CHECK-NOT: math.exp %{{.*}} : vector<16xf32>
// CHECK: math.fma
// CHECK: math.exp %{{.*}} : f64
// CHECK: math.tanh
func.func @f(%x: f32, %v: vector<16xf32>, %d: f64) -> (f32, vector<16xf32>, f64, f32) {
  %a = math.exp %x : f32
  %b = math.exp %v : vector<16xf32>
  %c = math.exp %d : f64
  %t = math.tanh %x : f32
  return %a, %b, %c, %t : f32, vector<16xf32>, f64, f32
}
