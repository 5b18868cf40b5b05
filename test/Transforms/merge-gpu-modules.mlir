// RUN: moka-opt %s --moka-merge-gpu-modules | FileCheck %s

// Kernels of all gpu.modules end up in the first one, renamed when their
// names collide, and the launches follow them.
// CHECK: gpu.module @k0 {
// CHECK:   gpu.func @kernel() kernel
// CHECK:   gpu.func @kernel_0() kernel
// CHECK: }
// CHECK-NOT: gpu.module
// CHECK-LABEL: func.func @host
// CHECK: gpu.launch_func @k0::@kernel
// CHECK: gpu.launch_func @k0::@kernel_0
module attributes {gpu.container_module} {
  gpu.module @k0 {
    gpu.func @kernel() kernel {
      gpu.return
    }
  }
  gpu.module @k1 {
    gpu.func @kernel() kernel {
      gpu.return
    }
  }
  func.func @host() {
    %c1 = arith.constant 1 : index
    gpu.launch_func @k0::@kernel blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1)
    gpu.launch_func @k1::@kernel blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1)
    return
  }
}
