//===- Allocator.h - Caching host allocator for generated code --*- C++ -*-===//
//
// The heap allocator that moka's generated CPU code calls (in place of
// malloc/free). Freed blocks are kept per size and reused, so repeated calls
// of a compiled function do not pay the kernel's page faults and zeroing for
// fresh mappings of large buffers every time.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_RUNTIME_ALLOCATOR_H
#define MOKA_RUNTIME_ALLOCATOR_H

#include <cstddef>

extern "C" {
/// Allocates `size` bytes aligned to 64 bytes; null on failure.
void *mokaAlloc(size_t size);
/// mokaAlloc for generated code: out of memory is a failed run-time check
/// (an error returned to the caller of a compiled library), never a null
/// pointer the code would write through.
void *mokaAllocOrFail(size_t size);
/// Returns a block from mokaAlloc to the cache (null is ignored).
void mokaFree(void *ptr);
/// Releases every cached block to the system.
void mokaTrimCache(void);
}

#endif // MOKA_RUNTIME_ALLOCATOR_H
