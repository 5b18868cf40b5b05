//===- AllocatorTest.cpp - Tests of the caching host allocator ------------===//

#include "moka/Runtime/Allocator.h"
#include "moka/Runtime/Invoke.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define MOKA_ASAN 1
#endif
#endif

namespace {

#ifdef MOKA_ASAN
// The sanitizer build's allocator hands out exact-size blocks and caches
// nothing, so that the bytes past a block and freed blocks are poisoned.
TEST(Allocator, ExactBlocksUnderAddressSanitizer) {
  char *a = static_cast<char *>(mokaAlloc(1000));
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 64, 0u);
  std::memset(a, 1, 1000);
  EXPECT_TRUE(__asan_address_is_poisoned(a + 1000));
  EXPECT_TRUE(mokaAllocOwns(a));
  mokaFree(a);
  EXPECT_FALSE(mokaAllocOwns(a));
  EXPECT_TRUE(__asan_address_is_poisoned(a));
}
#else
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
#endif

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
