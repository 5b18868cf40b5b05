//===- AllocatorTest.cpp - Tests of the caching host allocator ------------===//

#include "moka/Runtime/Allocator.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

namespace {

TEST(Allocator, AlignsAndReusesBlocks) {
  void *a = mokaAlloc(1000);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 64, 0u);
  std::memset(a, 1, 1000);
  mokaFree(a);
  // A freed block of the same rounded size is handed out again.
  void *b = mokaAlloc(1010);
  EXPECT_EQ(a, b);
  void *c = mokaAlloc(1010);
  EXPECT_NE(b, c);
  mokaFree(b);
  mokaFree(c);
  mokaTrimCache();
}

TEST(Allocator, IgnoresForeignAndNullPointers) {
  int local = 0;
  mokaFree(nullptr);
  mokaFree(&local); // Not from mokaAlloc: must not reach free().
  void *zero = mokaAlloc(0);
  EXPECT_NE(zero, nullptr);
  mokaFree(zero);
  mokaTrimCache();
}

} // namespace
