//===- MemRefCopy.cpp - Strided copies for generated code -----------------===//
//
// Implements the strided element copy behind lowered `memref.copy`.
//
//===----------------------------------------------------------------------===//

#include "moka/Runtime/MemRefCopy.h"

#include <cstring>
#include <vector>

namespace {

struct View {
  char *aligned;
  int64_t offset;
  const int64_t *sizes;
  const int64_t *strides;
};

View viewOf(const MokaUnrankedMemRef *m) {
  // {allocated, aligned, offset, sizes[rank], strides[rank]}
  auto *words = static_cast<const int64_t *>(m->descriptor);
  View v;
  std::memcpy(&v.aligned, &words[1], sizeof(char *));
  v.offset = words[2];
  v.sizes = words + 3;
  v.strides = words + 3 + m->rank;
  return v;
}

} // namespace

void mokaMemRefCopy(int64_t elemSize, MokaUnrankedMemRef *src,
                    MokaUnrankedMemRef *dst) {
  int64_t rank = src->rank;
  View s = viewOf(src), d = viewOf(dst);
  char *sp = s.aligned + s.offset * elemSize;
  char *dp = d.aligned + d.offset * elemSize;
  if (rank == 0) {
    std::memcpy(dp, sp, elemSize);
    return;
  }
  for (int64_t i = 0; i < rank; ++i)
    if (s.sizes[i] == 0)
      return;
  // Odometer over all but the innermost dimension; the innermost run is one
  // memcpy when both sides are unit-stride there.
  std::vector<int64_t> idx(rank, 0);
  int64_t inner = s.sizes[rank - 1];
  bool contiguousInner = s.strides[rank - 1] == 1 && d.strides[rank - 1] == 1;
  while (true) {
    int64_t so = 0, dof = 0;
    for (int64_t i = 0; i + 1 < rank; ++i) {
      so += idx[i] * s.strides[i];
      dof += idx[i] * d.strides[i];
    }
    if (contiguousInner) {
      std::memcpy(dp + dof * elemSize, sp + so * elemSize, inner * elemSize);
    } else {
      for (int64_t j = 0; j < inner; ++j)
        std::memcpy(dp + (dof + j * d.strides[rank - 1]) * elemSize,
                    sp + (so + j * s.strides[rank - 1]) * elemSize, elemSize);
    }
    int64_t dim = rank - 2;
    while (dim >= 0 && ++idx[dim] == s.sizes[dim])
      idx[dim--] = 0;
    if (dim < 0)
      return;
  }
}
