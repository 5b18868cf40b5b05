//===- CudaRuntime.cpp - Host side of moka's GPU code ---------------------===//
//
// mgpu* functions on the CUDA driver API, with libcuda.so.1 opened at run
// time (moka/Runtime/CudaRuntime.h).
//
//===----------------------------------------------------------------------===//

#include "moka/Runtime/CudaRuntime.h"
#include "moka/Runtime/Invoke.h"

#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <mutex>

namespace {

// The few driver API types used, as the driver ABI defines them.
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using Handle = void *;
constexpr int kStreamNonBlocking = 1;
constexpr int kEventDisableTiming = 2;
constexpr unsigned kMemAttachGlobal = 1;
// CUjit_option values.
constexpr int kJitErrorLogBuffer = 5;
constexpr int kJitErrorLogBufferSize = 6;
constexpr int kJitOptimizationLevel = 7;

template <typename T> using Id = T;

struct Driver {
  void *library = nullptr;
  std::string error;
#define MOKA_CUDA_FUNCTIONS(X)                                                 \
  X(cuInit, CUresult (*)(unsigned))                                            \
  X(cuDeviceGetCount, CUresult (*)(int *))                                     \
  X(cuDeviceGet, CUresult (*)(CUdevice *, int))                                \
  X(cuDeviceGetAttribute, CUresult (*)(int *, int, CUdevice))                  \
  X(cuDevicePrimaryCtxRetain, CUresult (*)(Handle *, CUdevice))                \
  X(cuCtxPushCurrent_v2, CUresult (*)(Handle))                                 \
  X(cuCtxPopCurrent_v2, CUresult (*)(Handle *))                                \
  X(cuGetErrorName, CUresult (*)(CUresult, const char **))                     \
  X(cuGetErrorString, CUresult (*)(CUresult, const char **))                   \
  X(cuModuleLoadData, CUresult (*)(Handle *, const void *))                    \
  X(cuModuleLoadDataEx,                                                        \
    CUresult (*)(Handle *, const void *, unsigned, int *, void **))            \
  X(cuModuleUnload, CUresult (*)(Handle))                                      \
  X(cuModuleGetFunction, CUresult (*)(Handle *, Handle, const char *))         \
  X(cuLaunchKernel,                                                            \
    CUresult (*)(Handle, unsigned, unsigned, unsigned, unsigned, unsigned,     \
                 unsigned, unsigned, Handle, void **, void **))                \
  X(cuStreamCreate, CUresult (*)(Handle *, unsigned))                          \
  X(cuStreamDestroy_v2, CUresult (*)(Handle))                                  \
  X(cuStreamSynchronize, CUresult (*)(Handle))                                 \
  X(cuStreamWaitEvent, CUresult (*)(Handle, Handle, unsigned))                 \
  X(cuEventCreate, CUresult (*)(Handle *, unsigned))                           \
  X(cuEventDestroy_v2, CUresult (*)(Handle))                                   \
  X(cuEventSynchronize, CUresult (*)(Handle))                                  \
  X(cuEventRecord, CUresult (*)(Handle, Handle))                               \
  X(cuMemAlloc_v2, CUresult (*)(CUdeviceptr *, size_t))                        \
  X(cuMemAllocManaged, CUresult (*)(CUdeviceptr *, size_t, unsigned))          \
  X(cuMemFree_v2, CUresult (*)(CUdeviceptr))                                   \
  X(cuMemcpyAsync, CUresult (*)(CUdeviceptr, CUdeviceptr, size_t, Handle))     \
  X(cuMemsetD32Async, CUresult (*)(CUdeviceptr, unsigned, size_t, Handle))     \
  X(cuMemsetD16Async, CUresult (*)(CUdeviceptr, unsigned short, size_t, Handle))
#define MOKA_DECLARE(name, type) Id<type> name = nullptr;
  MOKA_CUDA_FUNCTIONS(MOKA_DECLARE)
#undef MOKA_DECLARE
  Handle context = nullptr;
  int device = 0;
};

Driver &driver() {
  static Driver *d = [] {
    auto *d = new Driver();
    d->library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!d->library) {
      d->error = std::string("cannot load the CUDA driver (libcuda.so.1): ") +
                 dlerror();
      return d;
    }
#define MOKA_RESOLVE(name, type)                                               \
  d->name = reinterpret_cast<Id<type>>(dlsym(d->library, #name));              \
  if (!d->name && d->error.empty())                                            \
    d->error = "the CUDA driver lacks " #name;
    MOKA_CUDA_FUNCTIONS(MOKA_RESOLVE)
#undef MOKA_RESOLVE
    if (!d->error.empty())
      return d;
    int count = 0;
    if (d->cuInit(0) != 0 || d->cuDeviceGetCount(&count) != 0 || count == 0) {
      d->error = "no CUDA device is available";
      return d;
    }
    CUdevice device = 0;
    if (d->cuDeviceGet(&device, 0) != 0 ||
        d->cuDevicePrimaryCtxRetain(&d->context, device) != 0)
      d->error = "cannot create a CUDA context on device 0";
    d->device = device;
    return d;
  }();
  return *d;
}

/// Reports a failed CUDA call through the run-time check mechanism.
[[noreturn]] void fail(const char *call, CUresult result) {
  Driver &d = driver();
  const char *name = nullptr, *text = nullptr;
  if (d.cuGetErrorName)
    d.cuGetErrorName(result, &name);
  if (d.cuGetErrorString)
    d.cuGetErrorString(result, &text);
  static thread_local char message[512];
  std::snprintf(message, sizeof(message), "CUDA error in %s: %s (%s)", call,
                name ? name : "unknown error", text ? text : "");
  mokaCheckFailed(message);
}

Driver &ready() {
  Driver &d = driver();
  if (!d.error.empty()) {
    static thread_local char message[512];
    std::snprintf(message, sizeof(message), "%s", d.error.c_str());
    mokaCheckFailed(message);
  }
  return d;
}

/// Runs `call` (returning a CUresult) with the primary context current,
/// then reports a failure, once the context is popped again (the report
/// unwinds the stack: nothing with a destructor may be live here).
template <typename Call> void inContext(const char *what, Call call) {
  Driver &d = ready();
  CUresult pushed = d.cuCtxPushCurrent_v2(d.context);
  if (pushed != 0)
    fail("cuCtxPushCurrent", pushed);
  CUresult result = call(d);
  d.cuCtxPopCurrent_v2(nullptr);
  if (result != 0)
    fail(what, result);
}

#define CHECK(call)                                                            \
  do {                                                                         \
    CUresult result = (call);                                                  \
    if (result != 0)                                                           \
      fail(#call, result);                                                     \
  } while (false)

} // namespace

bool moka::cudaAvailable(std::string &why) {
  why = driver().error;
  return why.empty();
}

std::string moka::cudaDeviceChip() {
  Driver &d = driver();
  int major = 0, minor = 0;
  // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR.
  if (!d.error.empty() || d.cuDeviceGetAttribute(&major, 75, d.device) != 0 ||
      d.cuDeviceGetAttribute(&minor, 76, d.device) != 0 || major < 8)
    return "sm_80";
  return "sm_" + std::to_string(major) + std::to_string(minor);
}

std::vector<std::pair<const char *, void *>> moka::cudaRuntimeSymbols() {
  std::vector<std::pair<const char *, void *>> symbols;
#define MOKA_SYMBOL(name) symbols.emplace_back(#name, (void *)&name);
  MOKA_SYMBOL(mgpuModuleLoad)
  MOKA_SYMBOL(mgpuModuleLoadJIT)
  MOKA_SYMBOL(mgpuModuleUnload)
  MOKA_SYMBOL(mgpuModuleGetFunction)
  MOKA_SYMBOL(mgpuLaunchKernel)
  MOKA_SYMBOL(mgpuStreamCreate)
  MOKA_SYMBOL(mgpuStreamDestroy)
  MOKA_SYMBOL(mgpuStreamSynchronize)
  MOKA_SYMBOL(mgpuStreamWaitEvent)
  MOKA_SYMBOL(mgpuEventCreate)
  MOKA_SYMBOL(mgpuEventDestroy)
  MOKA_SYMBOL(mgpuEventSynchronize)
  MOKA_SYMBOL(mgpuEventRecord)
  MOKA_SYMBOL(mgpuMemAlloc)
  MOKA_SYMBOL(mgpuMemFree)
  MOKA_SYMBOL(mgpuMemcpy)
  MOKA_SYMBOL(mgpuMemset32)
  MOKA_SYMBOL(mgpuMemset16)
  MOKA_SYMBOL(mgpuSetDefaultDevice)
#undef MOKA_SYMBOL
  return symbols;
}

void *moka::cudaAllocManaged(size_t bytes) {
  Driver &d = driver();
  if (!d.error.empty())
    return nullptr;
  d.cuCtxPushCurrent_v2(d.context);
  CUdeviceptr ptr = 0;
  CUresult result =
      d.cuMemAllocManaged(&ptr, bytes ? bytes : 1, kMemAttachGlobal);
  d.cuCtxPopCurrent_v2(nullptr);
  return result == 0 ? reinterpret_cast<void *>(ptr) : nullptr;
}

void moka::cudaFreeManaged(void *ptr) {
  Driver &d = driver();
  if (!ptr || !d.error.empty())
    return;
  d.cuCtxPushCurrent_v2(d.context);
  d.cuMemFree_v2(reinterpret_cast<CUdeviceptr>(ptr));
  d.cuCtxPopCurrent_v2(nullptr);
}

extern "C" {

void *mgpuModuleLoad(void *data, size_t) {
  Handle module = nullptr;
  inContext("cuModuleLoadData",
            [&](Driver &d) { return d.cuModuleLoadData(&module, data); });
  return module;
}

void *mgpuModuleLoadJIT(void *data, int optLevel, size_t) {
  Handle module = nullptr;
  static thread_local char log[4096];
  log[0] = '\0';
  int options[] = {kJitErrorLogBuffer, kJitErrorLogBufferSize,
                   kJitOptimizationLevel};
  void *values[] = {log, reinterpret_cast<void *>(sizeof(log)),
                    reinterpret_cast<void *>(static_cast<intptr_t>(optLevel))};
  Driver &d = ready();
  CUresult pushed = d.cuCtxPushCurrent_v2(d.context);
  if (pushed != 0)
    fail("cuCtxPushCurrent", pushed);
  CUresult result = d.cuModuleLoadDataEx(&module, data, 3, options, values);
  d.cuCtxPopCurrent_v2(nullptr);
  if (result != 0) {
    if (log[0])
      mokaCheckFailed(log);
    fail("cuModuleLoadDataEx (PTX JIT)", result);
  }
  return module;
}

void mgpuModuleUnload(void *module) {
  Driver &d = driver();
  if (d.error.empty() && module)
    d.cuModuleUnload(module);
}

void *mgpuModuleGetFunction(void *module, const char *name) {
  Handle function = nullptr;
  inContext("cuModuleGetFunction", [&](Driver &d) {
    return d.cuModuleGetFunction(&function, module, name);
  });
  return function;
}

void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY,
                      intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                      intptr_t blockZ, int32_t smem, void *stream,
                      void **params, void **extra, size_t) {
  // An empty grid (an empty tensor) launches nothing.
  if (gridX == 0 || gridY == 0 || gridZ == 0)
    return;
  inContext("cuLaunchKernel", [&](Driver &d) {
    return d.cuLaunchKernel(function, gridX, gridY, gridZ, blockX, blockY,
                            blockZ, smem, stream, params, extra);
  });
}

void *mgpuStreamCreate(void) {
  Handle stream = nullptr;
  inContext("cuStreamCreate", [&](Driver &d) {
    return d.cuStreamCreate(&stream, kStreamNonBlocking);
  });
  return stream;
}

void mgpuStreamDestroy(void *stream) {
  CHECK(ready().cuStreamDestroy_v2(stream));
}

void mgpuStreamSynchronize(void *stream) {
  CHECK(ready().cuStreamSynchronize(stream));
}

void mgpuStreamWaitEvent(void *stream, void *event) {
  CHECK(ready().cuStreamWaitEvent(stream, event, 0));
}

void *mgpuEventCreate(void) {
  Handle event = nullptr;
  inContext("cuEventCreate", [&](Driver &d) {
    return d.cuEventCreate(&event, kEventDisableTiming);
  });
  return event;
}

void mgpuEventDestroy(void *event) { CHECK(ready().cuEventDestroy_v2(event)); }

void mgpuEventSynchronize(void *event) {
  CHECK(ready().cuEventSynchronize(event));
}

void mgpuEventRecord(void *event, void *stream) {
  CHECK(ready().cuEventRecord(event, stream));
}

void *mgpuMemAlloc(uint64_t bytes, void *, bool isHostShared) {
  CUdeviceptr ptr = 0;
  inContext(isHostShared ? "cuMemAllocManaged" : "cuMemAlloc", [&](Driver &d) {
    return isHostShared
               ? d.cuMemAllocManaged(&ptr, bytes ? bytes : 1, kMemAttachGlobal)
               : d.cuMemAlloc_v2(&ptr, bytes ? bytes : 1);
  });
  return reinterpret_cast<void *>(ptr);
}

void mgpuMemFree(void *ptr, void *) {
  if (ptr)
    inContext("cuMemFree", [&](Driver &d) {
      return d.cuMemFree_v2(reinterpret_cast<CUdeviceptr>(ptr));
    });
}

void mgpuMemcpy(void *dst, void *src, size_t bytes, void *stream) {
  inContext("cuMemcpyAsync", [&](Driver &d) {
    return d.cuMemcpyAsync(reinterpret_cast<CUdeviceptr>(dst),
                           reinterpret_cast<CUdeviceptr>(src), bytes, stream);
  });
}

void mgpuMemset32(void *dst, unsigned value, size_t count, void *stream) {
  inContext("cuMemsetD32Async", [&](Driver &d) {
    return d.cuMemsetD32Async(reinterpret_cast<CUdeviceptr>(dst), value, count,
                              stream);
  });
}

void mgpuMemset16(void *dst, unsigned short value, size_t count, void *stream) {
  inContext("cuMemsetD16Async", [&](Driver &d) {
    return d.cuMemsetD16Async(reinterpret_cast<CUdeviceptr>(dst), value, count,
                              stream);
  });
}

void mgpuSetDefaultDevice(int32_t) {}

} // extern "C"
