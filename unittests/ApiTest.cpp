//===- ApiTest.cpp - Tests of the C interface runtime ---------------------===//
//
// mokaInvoke with hand-written "compiled" functions: argument validation,
// result ownership and failed run-time checks.
//
//===----------------------------------------------------------------------===//

#include "moka/Runtime/Allocator.h"
#include "moka/Runtime/Invoke.h"
#include "moka/moka.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace {

/// A rank-2 memref descriptor as the LLVM lowering lays it out.
struct Desc2 {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[2];
  int64_t strides[2];
};

/// `double(f32[?x3]) -> f32[?x3]`: a fresh buffer with 2 * x.
void doublePacked(void **argv) {
  auto *result = static_cast<Desc2 *>(argv[0]);
  auto *x = static_cast<Desc2 *>(argv[1]);
  int64_t n = x->sizes[0] * x->sizes[1];
  auto *out = static_cast<float *>(mokaAlloc(n * sizeof(float)));
  for (int64_t i = 0; i < n; ++i)
    out[i] = 2 * static_cast<float *>(x->aligned)[i];
  *result = {out, out, 0, {x->sizes[0], x->sizes[1]}, {x->sizes[1], 1}};
}

/// `ident(f32[?x3]) -> (f32[?x3], f32[3x?])`: the argument itself, then its
/// transpose as a strided view of it.
void identPacked(void **argv) {
  auto *results = static_cast<Desc2 *>(argv[0]);
  auto *x = static_cast<Desc2 *>(argv[1]);
  results[0] = *x;
  results[1] = {x->allocated, x->aligned, 0, {3, x->sizes[0]}, {1, 3}};
}

void failingPacked(void **) { mokaCheckFailed("sizes differ"); }

const char *kDouble = "double(f32[?x3])->(f32[?x3])";

TEST(Api, CallsAndHandsOverResults) {
  float data[6] = {1, 2, 3, 4, 5, 6};
  int64_t shape[2] = {2, 3};
  moka_tensor x = moka_tensor_view(data, MOKA_DTYPE_F32, 2, shape);
  moka_tensor y;
  void *tensors[] = {&x, &y};
  ASSERT_EQ(mokaInvoke(kDouble, tensors, doublePacked), MOKA_OK)
      << moka_last_error();
  EXPECT_EQ(y.rank, 2);
  EXPECT_EQ(y.shape[0], 2);
  EXPECT_EQ(y.shape[1], 3);
  EXPECT_EQ(y.dtype, MOKA_DTYPE_F32);
  ASSERT_NE(y.owner, nullptr);
  EXPECT_TRUE(mokaAllocOwns(y.owner));
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(static_cast<float *>(y.data)[i], 2 * data[i]);
  void *owner = y.owner;
  moka_tensor_release(&y);
  EXPECT_FALSE(mokaAllocOwns(owner));
  EXPECT_EQ(y.data, nullptr);
}

TEST(Api, CopiesResultsThatAliasArguments) {
  float data[6] = {1, 2, 3, 4, 5, 6};
  int64_t shape[2] = {2, 3};
  moka_tensor x = moka_tensor_view(data, MOKA_DTYPE_F32, 2, shape);
  moka_tensor a, t;
  void *tensors[] = {&x, &a, &t};
  ASSERT_EQ(
      mokaInvoke("ident(f32[?x3])->(f32[?x3],f32[3x?])", tensors, identPacked),
      MOKA_OK);
  EXPECT_NE(a.data, static_cast<void *>(data));
  EXPECT_EQ(std::memcmp(a.data, data, sizeof(data)), 0);
  // The strided transpose comes back contiguous.
  float expected[6] = {1, 4, 2, 5, 3, 6};
  EXPECT_EQ(t.shape[0], 3);
  EXPECT_EQ(t.shape[1], 2);
  EXPECT_EQ(std::memcmp(t.data, expected, sizeof(expected)), 0);
  moka_tensor_release(&a);
  moka_tensor_release(&t);
}

TEST(Api, RejectsBadArguments) {
  float data[8] = {};
  int64_t shape[2] = {2, 3};
  moka_tensor y;
  auto call = [&](moka_tensor *x) {
    void *tensors[] = {x, &y};
    return mokaInvoke(kDouble, tensors, doublePacked);
  };
  auto expectError = [&](moka_tensor *x, const char *message) {
    EXPECT_EQ(call(x), MOKA_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(moka_last_error()).find(message), std::string::npos)
        << moka_last_error();
    EXPECT_EQ(y.data, nullptr);
  };
  expectError(nullptr, "argument #0 is a null pointer");
  moka_tensor x = moka_tensor_view(data, MOKA_DTYPE_F64, 2, shape);
  expectError(&x, "has dtype f64, expected f32[?x3]");
  x = moka_tensor_view(data, MOKA_DTYPE_F32, 1, shape);
  expectError(&x, "has rank 1");
  int64_t wrong[2] = {2, 4};
  x = moka_tensor_view(data, MOKA_DTYPE_F32, 2, wrong);
  expectError(&x, "has shape [2x4], expected f32[?x3]");
  int64_t negative[2] = {-1, 3};
  x = moka_tensor_view(data, MOKA_DTYPE_F32, 2, negative);
  expectError(&x, "has shape");
  x = moka_tensor_view(nullptr, MOKA_DTYPE_F32, 2, shape);
  expectError(&x, "null data pointer");
  x = moka_tensor_view(reinterpret_cast<char *>(data) + 1, MOKA_DTYPE_F32, 2,
                       shape);
  expectError(&x, "not aligned");
  int64_t huge[2] = {INT64_MAX / 2, 3};
  x = moka_tensor_view(data, MOKA_DTYPE_F32, 2, huge);
  expectError(&x, "too many elements");
  x = moka_tensor_view(data, MOKA_DTYPE_F32, 2, shape);
  x.rank = 99;
  expectError(&x, "has rank 99");
  // A null result pointer.
  moka_tensor good = moka_tensor_view(data, MOKA_DTYPE_F32, 2, shape);
  void *tensors[] = {&good, nullptr};
  EXPECT_EQ(mokaInvoke(kDouble, tensors, doublePacked),
            MOKA_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(moka_last_error(), "double: result #0 is a null pointer");
}

TEST(Api, EmptyTensorsNeedNoData) {
  int64_t shape[2] = {0, 3};
  moka_tensor x = moka_tensor_view(nullptr, MOKA_DTYPE_F32, 2, shape);
  moka_tensor y;
  void *tensors[] = {&x, &y};
  ASSERT_EQ(mokaInvoke(kDouble, tensors, doublePacked), MOKA_OK);
  EXPECT_EQ(moka_tensor_num_elements(&y), 0);
  moka_tensor_release(&y);
}

TEST(Api, FailedChecksReturnAnError) {
  float data[3] = {};
  int64_t shape[2] = {1, 3};
  moka_tensor x = moka_tensor_view(data, MOKA_DTYPE_F32, 2, shape);
  moka_tensor y;
  void *tensors[] = {&x, &y};
  for (int i = 0; i < 3; ++i) { // The thread recovers every time.
    EXPECT_EQ(mokaInvoke(kDouble, tensors, failingPacked),
              MOKA_ERROR_RUNTIME_CHECK);
    EXPECT_STREQ(moka_last_error(), "double: sizes differ");
    EXPECT_EQ(y.data, nullptr);
  }
  EXPECT_EQ(mokaInvoke(kDouble, tensors, doublePacked), MOKA_OK);
  moka_tensor_release(&y);
}

TEST(Api, CorruptSignature) {
  moka_tensor y;
  void *tensors[] = {&y};
  EXPECT_EQ(mokaInvoke("f(q7[3])->()", tensors, failingPacked),
            MOKA_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moka_last_error()).find("corrupt"), std::string::npos);
}

TEST(Api, DTypeSizesAndViews) {
  EXPECT_EQ(moka_dtype_size(MOKA_DTYPE_BF16), 2u);
  EXPECT_EQ(moka_dtype_size(MOKA_DTYPE_I64), 8u);
  EXPECT_EQ(moka_dtype_size(MOKA_DTYPE_INVALID), 0u);
  int64_t shape[3] = {2, 3, 4};
  moka_tensor t = moka_tensor_view(nullptr, MOKA_DTYPE_I8, 3, shape);
  EXPECT_EQ(moka_tensor_num_elements(&t), 24);
  EXPECT_EQ(moka_tensor_num_elements(nullptr), 0);
  moka_tensor_release(&t); // No owner: nothing happens.
  moka_tensor_release(nullptr);
}

} // namespace

namespace {

TEST(Api, RejectsAResultThatIsAnArgument) {
  float data[6] = {};
  int64_t shape[2] = {2, 3};
  moka_tensor x = moka_tensor_view(data, MOKA_DTYPE_F32, 2, shape);
  void *tensors[] = {&x, &x};
  EXPECT_EQ(mokaInvoke(kDouble, tensors, doublePacked),
            MOKA_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(moka_last_error(),
               "double: result #0 is the same moka_tensor as argument #0");
  EXPECT_EQ(x.data, static_cast<void *>(data)); // Left as it was.
}

} // namespace
