//===- Allocator.cpp - Caching host allocator for generated code ----------===//
//
// A size-keyed cache of freed blocks in front of aligned_alloc. Built with
// AddressSanitizer, it hands out exact-size blocks and caches nothing, so
// that generated code reading or writing past a buffer, or using one after
// it was freed, is reported.
//
//===----------------------------------------------------------------------===//

#include "moka/Runtime/Allocator.h"
#include "moka/Runtime/Invoke.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MOKA_ASAN 1
#endif
#endif

namespace {

constexpr size_t kAlignment = 64;
#ifdef MOKA_ASAN
constexpr bool kExactBlocks = true;
#else
constexpr bool kExactBlocks = false;
#endif

struct Cache {
  std::mutex mutex;
  std::unordered_map<void *, size_t> live;
  std::multimap<size_t, void *> free;
  size_t cachedBytes = 0;
  // Beyond this, freed blocks go back to the system.
  static constexpr size_t kMaxCachedBytes = size_t(4) << 30;
};

Cache &cache() {
  static Cache *c = new Cache();
  return *c;
}

} // namespace

void *mokaAlloc(size_t size) {
  size_t rounded = (size + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded == 0)
    rounded = kAlignment;
  Cache &c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  void *ptr;
  if (kExactBlocks) {
    if (posix_memalign(&ptr, kAlignment, size ? size : 1) != 0)
      return nullptr;
    c.live[ptr] = 0;
    return ptr;
  }
  auto it = c.free.find(rounded);
  if (it != c.free.end()) {
    ptr = it->second;
    c.free.erase(it);
    c.cachedBytes -= rounded;
  } else {
    ptr = std::aligned_alloc(kAlignment, rounded);
    if (!ptr)
      return nullptr;
  }
  c.live[ptr] = rounded;
  return ptr;
}

void *mokaAllocOrFail(size_t size) {
  if (void *ptr = mokaAlloc(size))
    return ptr;
  static thread_local char message[96];
  std::snprintf(message, sizeof(message), "out of memory allocating %zu bytes",
                size);
  mokaCheckFailed(message);
}

void mokaFree(void *ptr) {
  if (!ptr)
    return;
  Cache &c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  auto it = c.live.find(ptr);
  if (it == c.live.end())
    return; // Not ours: never hand foreign memory to free().
  size_t size = it->second;
  c.live.erase(it);
  if (kExactBlocks || c.cachedBytes + size > Cache::kMaxCachedBytes) {
    std::free(ptr);
    return;
  }
  c.free.emplace(size, ptr);
  c.cachedBytes += size;
}

bool mokaAllocOwns(void *ptr) {
  if (!ptr)
    return false;
  Cache &c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.live.count(ptr) != 0;
}

void mokaTrimCache(void) {
  Cache &c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto &[size, ptr] : c.free)
    std::free(ptr);
  c.free.clear();
  c.cachedBytes = 0;
}
