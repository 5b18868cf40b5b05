//===- CudaRuntime.h - Host side of moka's GPU code -------------*- C++ -*-===//
//
// The functions that `gpu.launch_func`, `gpu.alloc` and the embedded kernel
// binaries lower to (mgpuModuleLoad, mgpuLaunchKernel, mgpuMemAlloc, ...),
// implemented on the CUDA driver API. libcuda is loaded when first needed,
// so that everything builds and runs on machines without a GPU; every CUDA
// error is reported through mokaCheckFailed with the failing call and
// CUDA's message (an error status from a moka library, an error exit from
// moka-run).
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_RUNTIME_CUDARUNTIME_H
#define MOKA_RUNTIME_CUDARUNTIME_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace moka {

/// Whether a CUDA driver and at least one device are present; otherwise
/// `why` says what is missing.
bool cudaAvailable(std::string &why);

/// The architecture of device 0 as `sm_XY` (sm_80 when it cannot be read).
std::string cudaDeviceChip();

/// The mgpu* functions by name, for a JIT to resolve generated code's calls.
std::vector<std::pair<const char *, void *>> cudaRuntimeSymbols();

/// Managed memory (reachable from host and device), for arguments and
/// results of GPU functions; null on failure.
void *cudaAllocManaged(size_t bytes);
void cudaFreeManaged(void *ptr);

} // namespace moka

extern "C" {
void *mgpuModuleLoad(void *data, size_t size);
void *mgpuModuleLoadJIT(void *data, int optLevel, size_t size);
void mgpuModuleUnload(void *module);
void *mgpuModuleGetFunction(void *module, const char *name);
void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY,
                      intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                      intptr_t blockZ, int32_t smem, void *stream,
                      void **params, void **extra, size_t paramsCount);
void *mgpuStreamCreate(void);
void mgpuStreamDestroy(void *stream);
void mgpuStreamSynchronize(void *stream);
void mgpuStreamWaitEvent(void *stream, void *event);
void *mgpuEventCreate(void);
void mgpuEventDestroy(void *event);
void mgpuEventSynchronize(void *event);
void mgpuEventRecord(void *event, void *stream);
void *mgpuMemAlloc(uint64_t bytes, void *stream, bool isHostShared);
void mgpuMemFree(void *ptr, void *stream);
void mgpuMemcpy(void *dst, void *src, size_t bytes, void *stream);
void mgpuMemset32(void *dst, unsigned value, size_t count, void *stream);
void mgpuMemset16(void *dst, unsigned short value, size_t count, void *stream);
void mgpuSetDefaultDevice(int32_t device);
}

#endif // MOKA_RUNTIME_CUDARUNTIME_H
