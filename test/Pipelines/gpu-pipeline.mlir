// RUN: moka-opt %s --moka-gpu-pipeline | FileCheck %s

// The GPU pipeline: one gpu.binary with the kernels as PTX for the chosen
// chip, host code in the LLVM dialect that launches them on managed memory.
// CHECK-LABEL: llvm.func @rational
// CHECK: gpu.launch_func @rational_kernel::@rational_kernel blocks in ({{.*}}) threads in ({{.*}})
// CHECK: gpu.launch_func @rational_kernel::@rational_kernel_0
// CHECK: gpu.binary @rational_kernel [#gpu.object<#nvvm.target<O = 3, chip = "sm_90", features = "+ptx80">, {{.*}}assembly = "{{.*}}.visible .entry rational_kernel
// CHECK-NOT: gpu.binary
// CHECK: llvm.func @mgpuMemAlloc(i64, !llvm.ptr, i8) -> !llvm.ptr
// CHECK: llvm.func @mgpuMemFree(!llvm.ptr, !llvm.ptr)
func.func @rational(%x: tensor<?x384xf32>, %a: tensor<8x6xf32>,
                    %b: tensor<8x4xf32>) -> tensor<?x384xf32> {
  %y = kan.rational %x, %a, %b
      : tensor<?x384xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %y : tensor<?x384xf32>
}
