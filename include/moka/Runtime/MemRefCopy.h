//===- MemRefCopy.h - Strided copies for generated code ---------*- C++ -*-===//
//
// The copy routine that lowered `memref.copy` calls when source or
// destination is not contiguous.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_RUNTIME_MEMREFCOPY_H
#define MOKA_RUNTIME_MEMREFCOPY_H

#include <cstdint>

extern "C" {

/// An unranked memref as the LLVM lowering passes it: the rank and a pointer
/// to the ranked descriptor {allocated, aligned, offset, sizes[rank],
/// strides[rank]}.
struct MokaUnrankedMemRef {
  int64_t rank;
  void *descriptor;
};

/// Copies every element of `src` into `dst` (same shape), element size
/// `elemSize` bytes, following both memrefs' strides. Has the ABI of MLIR's
/// `memrefCopy`, under which name the runtime registers it.
void mokaMemRefCopy(int64_t elemSize, MokaUnrankedMemRef *src,
                    MokaUnrankedMemRef *dst);
}

#endif // MOKA_RUNTIME_MEMREFCOPY_H
