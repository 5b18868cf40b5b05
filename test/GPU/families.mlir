// Every moka op family compiled for NVIDIA GPUs, for sm_80 and sm_90
// (ptxas.test assembles them): element-wise kernels with one thread per
// element of the innermost dimension; the MoE experts as grouped products
// and decode attention as split-sequence blocks, with tiles staged in
// shared memory.

// RUN: mokac %s --target=nvptx --chip=sm_90 --emit=ptx -o %t.sm90.ptx
// RUN: FileCheck %s --check-prefix=PTX < %t.sm90.ptx
// RUN: FileCheck %s --check-prefix=MOE < %t.sm90.ptx
// RUN: FileCheck %s --check-prefix=KV < %t.sm90.ptx
// RUN: mokac %s --target=nvptx --chip=sm_80 --emit=ptx -o %t.sm80.ptx
// RUN: FileCheck %s --check-prefix=SM80 < %t.sm80.ptx

// PTX: .version 8.0
// PTX: .target sm_90
// PTX: .address_size 64
// PTX: .visible .entry rational_kernel(
// PTX: mov.u32 {{.*}}%tid.x
// PTX: ld.global
// PTX: div.rn.f32
// PTX: st.global
// PTX-DAG: .visible .entry layer_kernel
// PTX-DAG: .visible .entry grad_kernel
// PTX-DAG: .visible .entry mixtral_kernel
// PTX-DAG: .visible .entry deepseek_kernel
// PTX-DAG: .visible .entry kv_append_kernel
// PTX-DAG: .visible .entry kv_attend_kernel
// The MoE experts' grouped products: 256-thread blocks staging the gathered
// rows' and the gate and up weights' tiles (16 x 66 words each) in shared
// memory next to two 64 x 64 accumulator tiles, barriers between the
// copies and the multiply-adds.
// MOE: .visible .entry mixtral_kernel_{{[0-9]+}}(
// MOE: .maxntid 256, 1, 1
// MOE: .shared .align 4 .b8 __wg_mixtral_kernel_[[K:[0-9]+]]_0[4224];
// MOE: .shared .align 4 .b8 __wg_mixtral_kernel_[[K]]_1[4224];
// MOE: .shared .align 4 .b8 __wg_mixtral_kernel_[[K]]_2[4224];
// MOE: .shared .align 4 .b8 __wg_mixtral_kernel_[[K]]_3[16384];
// MOE: .shared .align 4 .b8 __wg_mixtral_kernel_[[K]]_4[16384];
// MOE: st.shared.b32
// MOE: bar.sync 0;
// MOE: ld.global
// MOE: st.shared.b32
// MOE: bar.sync 0;
// MOE: ld.shared.b32
// MOE: fma.rn.f32
// Decode attention on the int4 cache: a block per (chunk, head, sequence)
// with the scaled query heads (4 x 128 words), the chunk's scores
// (4 x 256) and a step's dequantized keys (32 x 129) in shared memory.
// KV: .visible .entry kv_attend_kernel(
// KV: .shared .align 4 .b8 __wg_kv_attend_kernel_0[2048];
// KV: .shared .align 4 .b8 __wg_kv_attend_kernel_1[4096];
// KV: .shared .align 4 .b8 __wg_kv_attend_kernel_2[16512];
// KV: bar.sync 0;
// KV: ld.global.b8
// KV: st.shared.b32
// KV: bar.sync 0;
// KV: ld.shared.b32
// KV: fma.rn.f32
// SM80: .version 7.0
// SM80: .target sm_80

func.func @rational(%x: tensor<?x384xf32>, %a: tensor<8x6xf32>,
                    %b: tensor<8x4xf32>) -> tensor<?x384xf32> {
  %y = kan.rational %x, %a, %b
      : tensor<?x384xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %y : tensor<?x384xf32>
}

func.func @layer(%x: tensor<?x32xf32>, %w: tensor<64x32x8xf32>,
                 %wb: tensor<64x32xf32>) -> tensor<?x64xf32> {
  %y = kan.layer bspline %x, %w base(%wb : tensor<64x32xf32>)
      {grid_size = 5 : i64, order = 3 : i64, grid_min = -2.0 : f64,
       grid_max = 2.0 : f64} : tensor<?x32xf32>, tensor<64x32x8xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

func.func @grad(%x: tensor<?x64xf32>, %dy: tensor<?x64xf32>,
                %a: tensor<8x6xf32>, %b: tensor<8x4xf32>)
    -> (tensor<?x64xf32>, tensor<8x6xf32>, tensor<8x4xf32>) {
  %dx, %da, %db = kan.rational_grad %x, %dy, %a, %b
      : tensor<?x64xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %dx, %da, %db : tensor<?x64xf32>, tensor<8x6xf32>, tensor<8x4xf32>
}

func.func @mixtral(%x: tensor<?x256xf32>, %gate: tensor<8x256xf32>,
                   %w1: tensor<8x512x256xf32>, %w2: tensor<8x256x512xf32>,
                   %w3: tensor<8x512x256xf32>) -> tensor<?x256xf32> {
  %y = moe.layer swiglu %x, %gate, %w1, %w2 up(%w3 : tensor<8x512x256xf32>)
      {k = 2 : i64, normalize = true}
      : tensor<?x256xf32>, tensor<8x256xf32>, tensor<8x512x256xf32>,
        tensor<8x256x512xf32> -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
}

func.func @deepseek(%x: tensor<?x128xf32>, %gate: tensor<16x128xf32>,
                    %w1: tensor<16x64x128xf32>, %w2: tensor<16x128x64xf32>,
                    %w3: tensor<16x64x128xf32>, %bias: tensor<16xf32>,
                    %s1: tensor<128x128xf32>, %s2: tensor<128x128xf32>,
                    %s3: tensor<128x128xf32>) -> tensor<?x128xf32> {
  %y = moe.layer swiglu %x, %gate, %w1, %w2 up(%w3 : tensor<16x64x128xf32>)
      bias(%bias : tensor<16xf32>)
      shared(%s1, %s2 : tensor<128x128xf32>, tensor<128x128xf32>)
      shared_up(%s3 : tensor<128x128xf32>)
      {k = 4 : i64, scoring = #moe<scoring sigmoid>, n_group = 4 : i64,
       topk_group = 2 : i64, group_score = #moe<group_score top2_sum>,
       normalize = true, routed_scaling_factor = 2.5 : f64}
      : tensor<?x128xf32>, tensor<16x128xf32>, tensor<16x64x128xf32>,
        tensor<16x128x64xf32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

!Q = !kv.cache<1x8x1024x128, i4, key_group = 32, value_group = 32, window = 128>

func.func @kv_append(%c: !Q, %k: tensor<1x8x?x128xf32>,
                     %v: tensor<1x8x?x128xf32>) -> !Q {
  %c1 = kv.append %c, %k, %v : !Q, tensor<1x8x?x128xf32>, tensor<1x8x?x128xf32>
  return %c1 : !Q
}

func.func @kv_attend(%q: tensor<1x32x128xf32>, %c: !Q) -> tensor<1x32x128xf32> {
  %o = kv.decode_attention %q, %c : tensor<1x32x128xf32>, !Q -> tensor<1x32x128xf32>
  return %o : tensor<1x32x128xf32>
}
