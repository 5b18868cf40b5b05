//===- Allocator.cpp - Caching host allocator for generated code ----------===//
//
// A size-keyed cache of freed blocks in front of aligned_alloc.
//
//===----------------------------------------------------------------------===//

#include "moka/Runtime/Allocator.h"
#include "moka/Runtime/Invoke.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>

namespace {

constexpr size_t kAlignment = 64;

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
  auto it = c.free.find(rounded);
  void *ptr;
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
  if (c.cachedBytes + size > Cache::kMaxCachedBytes) {
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
