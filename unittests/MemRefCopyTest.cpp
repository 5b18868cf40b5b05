//===- MemRefCopyTest.cpp - Tests of the strided memref copy --------------===//

#include "moka/Runtime/MemRefCopy.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <vector>

namespace {

/// A ranked memref descriptor of rank `R` laid out as the LLVM lowering
/// passes it.
template <int R> struct Descriptor {
  float *allocated;
  float *aligned;
  int64_t offset;
  int64_t sizes[R];
  int64_t strides[R];
};

TEST(MemRefCopy, StridedColumnsIntoContiguous) {
  // Source: columns 1..3 of a 4 x 5 row-major matrix; destination 4 x 3.
  std::vector<float> src(20);
  std::iota(src.begin(), src.end(), 0.0f);
  std::vector<float> dst(12, -1.0f);
  Descriptor<2> s{src.data(), src.data(), 1, {4, 3}, {5, 1}};
  Descriptor<2> d{dst.data(), dst.data(), 0, {4, 3}, {3, 1}};
  MokaUnrankedMemRef us{2, &s}, ud{2, &d};
  mokaMemRefCopy(sizeof(float), &us, &ud);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j)
      EXPECT_EQ(dst[i * 3 + j], src[i * 5 + 1 + j]);
}

TEST(MemRefCopy, TransposedInnerStride) {
  // Source read with a non-unit innermost stride (a transpose view).
  std::vector<float> src = {0, 1, 2, 3, 4, 5}; // 2 x 3
  std::vector<float> dst(6, -1.0f);
  Descriptor<2> s{src.data(), src.data(), 0, {3, 2}, {1, 3}};
  Descriptor<2> d{dst.data(), dst.data(), 0, {3, 2}, {2, 1}};
  MokaUnrankedMemRef us{2, &s}, ud{2, &d};
  mokaMemRefCopy(sizeof(float), &us, &ud);
  EXPECT_EQ(dst, (std::vector<float>{0, 3, 1, 4, 2, 5}));
}

TEST(MemRefCopy, EmptyAndScalar) {
  std::vector<float> src = {7.0f}, dst = {0.0f};
  Descriptor<1> s{src.data(), src.data(), 0, {0}, {1}};
  Descriptor<1> d{dst.data(), dst.data(), 0, {0}, {1}};
  MokaUnrankedMemRef us{1, &s}, ud{1, &d};
  mokaMemRefCopy(sizeof(float), &us, &ud);
  EXPECT_EQ(dst[0], 0.0f);

  struct {
    float *allocated, *aligned;
    int64_t offset;
  } s0{src.data(), src.data(), 0}, d0{dst.data(), dst.data(), 0};
  MokaUnrankedMemRef us0{0, &s0}, ud0{0, &d0};
  mokaMemRefCopy(sizeof(float), &us0, &ud0);
  EXPECT_EQ(dst[0], 7.0f);
}

} // namespace
