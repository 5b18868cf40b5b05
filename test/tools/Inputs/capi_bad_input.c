/* Bad input to the C interface of a mokac-compiled library (capi.mlir):
 * every call must return an error status with a clear message, never crash.
 * Prints one line per case for FileCheck (capi-errors.test).
 *
 *   capi_bad_input          the argument-validation cases
 *   capi_bad_input oom N    outer() on N elements under a 4 GiB address-space
 *                           limit: must fail with an error status
 */
#include "capi.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void report(const char *label, moka_status status) {
  printf("%s: status=%d error=%s\n", label, (int)status, moka_last_error());
}

/* Results must be empty after a failed call. */
static void expect_empty(const char *label, const moka_tensor *t) {
  if (t->data != NULL || t->rank != 0 || t->owner != NULL)
    printf("%s: FAIL: result not emptied after an error\n", label);
}

static int oom(long n) {
  struct rlimit limit = {(rlim_t)4 << 30, (rlim_t)4 << 30};
  if (setrlimit(RLIMIT_AS, &limit) != 0) {
    perror("setrlimit");
    return 2;
  }
  float *data = calloc((size_t)n, sizeof(float));
  int64_t shape[1] = {n};
  moka_tensor x = moka_tensor_view(data, MOKA_DTYPE_F32, 1, shape);
  moka_tensor y;
  report("oom", capi_outer(&x, &y));
  expect_empty("oom", &y);
  /* The library still works afterwards. */
  shape[0] = 2;
  x = moka_tensor_view(data, MOKA_DTYPE_F32, 1, shape);
  report("after-oom", capi_outer(&x, &y));
  moka_tensor_release(&y);
  free(data);
  puts("DONE");
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "oom") == 0)
    return oom(atol(argv[2]));

  printf("initial-error: '%s'\n",
         moka_last_error() ? moka_last_error() : "(null)");
  printf("manifest: %s", capi_moka_manifest());

  _Alignas(64) float xs[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  _Alignas(64) float ys[12] = {0};
  int64_t s23[2] = {2, 3}, s33[2] = {3, 3};
  moka_tensor x = moka_tensor_view(xs, MOKA_DTYPE_F32, 2, s23);
  moka_tensor y = moka_tensor_view(ys, MOKA_DTYPE_F32, 2, s23);
  moka_tensor r0, r1, bad;

  /* A good call first. */
  moka_status st = capi_add(&x, &y, &r0, &r1);
  report("good", st);
  if (st == MOKA_OK) {
    printf("good: r0 shape [%lld, %lld] r1 aliases x: %s\n",
           (long long)r0.shape[0], (long long)r0.shape[1],
           r1.data == (void *)xs ? "yes" : "no");
    moka_tensor_release(&r0);
    moka_tensor_release(&r1);
  }

  /* Null pointers and aliased structs. */
  memset(&r0, 0x5a, sizeof r0); /* garbage the call must overwrite */
  report("null-arg", capi_add(NULL, &y, &r0, &r1));
  expect_empty("null-arg", &r0);
  report("null-arg1", capi_add(&x, NULL, &r0, &r1));
  report("null-result0", capi_add(&x, &y, NULL, &r1));
  report("null-result1", capi_add(&x, &y, &r0, NULL));
  report("same-results", capi_add(&x, &y, &r0, &r0));
  report("result-is-arg", capi_add(&x, &y, &r0, &x));

  /* dtype */
  bad = x;
  bad.dtype = MOKA_DTYPE_F64;
  report("dtype-f64", capi_add(&bad, &y, &r0, &r1));
  bad = x;
  bad.dtype = MOKA_DTYPE_INVALID;
  report("dtype-invalid", capi_add(&bad, &y, &r0, &r1));
  bad = x;
  bad.dtype = (moka_dtype)99;
  report("dtype-99", capi_add(&bad, &y, &r0, &r1));
  bad = x;
  bad.dtype = MOKA_DTYPE_I32; /* same element size, other type */
  report("dtype-i32", capi_add(&bad, &y, &r0, &r1));

  /* rank */
  bad = x;
  bad.rank = 1;
  report("rank-1", capi_add(&bad, &y, &r0, &r1));
  bad = x;
  bad.rank = -1;
  report("rank-negative", capi_add(&bad, &y, &r0, &r1));
  bad = x;
  bad.rank = 9;
  report("rank-9", capi_add(&bad, &y, &r0, &r1));
  bad = x;
  bad.rank = INT32_MAX;
  report("rank-huge", capi_add(&bad, &y, &r0, &r1));

  /* shape */
  bad = x;
  bad.shape[1] = 4;
  report("static-dim", capi_add(&bad, &y, &r0, &r1));
  bad = x;
  bad.shape[0] = -1;
  report("negative-dim", capi_add(&bad, &y, &r0, &r1));
  bad = x;
  bad.shape[0] = INT64_MAX / 2;
  report("overflow-dim", capi_add(&bad, &y, &r0, &r1));
  bad = x;
  bad.shape[0] = INT64_MAX / 3 / 2; /* elements fit, bytes do not */
  report("overflow-bytes", capi_add(&bad, &y, &r0, &r1));

  /* data */
  bad = x;
  bad.data = NULL;
  report("null-data", capi_add(&bad, &y, &r0, &r1));
  bad = x;
  bad.data = (char *)xs + 2;
  report("misaligned", capi_add(&bad, &y, &r0, &r1));

  /* Dynamic sizes that must agree: a run-time check, then a good call. */
  moka_tensor y3 = moka_tensor_view(ys, MOKA_DTYPE_F32, 2, s33);
  report("rows-differ", capi_add(&x, &y3, &r0, &r1));
  expect_empty("rows-differ", &r0);
  st = capi_add(&x, &y, &r0, &r1);
  report("after-check", st);
  if (st == MOKA_OK) {
    moka_tensor_release(&r0);
    moka_tensor_release(&r1);
  }

  /* Empty tensors need no data. */
  int64_t s03[2] = {0, 3};
  moka_tensor e = moka_tensor_view(NULL, MOKA_DTYPE_F32, 2, s03);
  st = capi_add(&e, &e, &r0, &r1);
  report("empty", st);
  if (st == MOKA_OK) {
    printf("empty: r0 shape [%lld, %lld]\n", (long long)r0.shape[0],
           (long long)r0.shape[1]);
    moka_tensor_release(&r0);
    moka_tensor_release(&r1);
  }

  /* Helpers on bad values. */
  moka_tensor_release(&r0); /* already released: nothing happens */
  moka_tensor_release(NULL);
  moka_tensor_release(&x); /* a view: not ours, left alone */
  printf("release-view: data %s\n", x.data == (void *)xs ? "kept" : "CHANGED");
  printf("dtype-size-99: %zu\n", moka_dtype_size((moka_dtype)99));
  bad = x;
  bad.shape[0] = -5;
  printf("num-elements-negative: %lld\n",
         (long long)moka_tensor_num_elements(&bad));
  bad = x;
  bad.rank = 99;
  printf("num-elements-rank-99: %lld\n",
         (long long)moka_tensor_num_elements(&bad));
  bad = x;
  bad.shape[0] = INT64_MAX;
  bad.shape[1] = 3;
  printf("num-elements-overflow: %lld\n",
         (long long)moka_tensor_num_elements(&bad));
  printf("num-elements-null: %lld\n",
         (long long)moka_tensor_num_elements(NULL));
  moka_tensor v = moka_tensor_view(xs, MOKA_DTYPE_F32, 20, NULL);
  printf("view-rank-20: rank %d shape0 %lld\n", v.rank, (long long)v.shape[0]);
  v = moka_tensor_view(xs, MOKA_DTYPE_F32, -3, s23);
  printf("view-rank-negative: rank %d\n", v.rank);
  puts("DONE");
  return 0;
}
