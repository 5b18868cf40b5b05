/*===- moka.h - C interface of moka-compiled models -----------------------===*
 *
 * The runtime half of the C ABI of libraries that `mokac` produces. Every
 * public function `@f` of a model compiled with `mokac --name=NAME` becomes
 *
 *   moka_status NAME_f(const moka_tensor *arg0, ..., moka_tensor *result0,
 *                      ...);
 *
 * declared in the header `mokac --emit=header` writes, which also documents
 * each argument's dtype and shape. Arguments are read, never modified, and
 * may be released as soon as the call returns. Result structs are
 * overwritten (release a result you keep before reusing its struct); a
 * struct may not be both an argument and a result. On MOKA_OK every result
 * tensor holds a buffer the runtime allocated: release it with
 * moka_tensor_release(). On any other status the results are left empty
 * (data == NULL, rank == 0), nothing needs releasing, and
 * moka_last_error() describes the problem.
 *
 * Tensors are dense, row-major (C order) arrays. Calls on different threads
 * are independent; the generated code runs its parallel loops on the OpenMP
 * runtime's threads.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOKA_MOKA_H
#define MOKA_MOKA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MOKA_EXPORT __attribute__((visibility("default")))
#else
#define MOKA_EXPORT
#endif

/** The largest rank a moka_tensor carries. */
#define MOKA_MAX_RANK 8

/** Element types. bf16 data is raw bfloat16 bits (uint16_t). */
typedef enum moka_dtype {
  MOKA_DTYPE_INVALID = 0,
  MOKA_DTYPE_F32 = 1,
  MOKA_DTYPE_F64 = 2,
  MOKA_DTYPE_F16 = 3,
  MOKA_DTYPE_BF16 = 4,
  MOKA_DTYPE_BOOL = 5, /* one byte per element, 0 or 1 */
  MOKA_DTYPE_I8 = 6,
  MOKA_DTYPE_I32 = 7,
  MOKA_DTYPE_I64 = 8
} moka_dtype;

typedef enum moka_status {
  MOKA_OK = 0,
  /** A null pointer, wrong dtype, rank or dimension, misaligned data. */
  MOKA_ERROR_INVALID_ARGUMENT = 1,
  MOKA_ERROR_OUT_OF_MEMORY = 2,
  /** A check of the compiled code failed (dimensions that must agree,
   *  indices out of range); the message names it. */
  MOKA_ERROR_RUNTIME_CHECK = 3
} moka_status;

typedef struct moka_tensor {
  /** First element; aligned to the element size. May be NULL when the
   *  tensor has no elements. */
  void *data;
  moka_dtype dtype;
  int32_t rank;
  int64_t shape[MOKA_MAX_RANK];
  /** Set by the runtime on results it allocated; NULL on tensors the caller
   *  fills in. */
  void *owner;
} moka_tensor;

/** The message of the last failed call on this thread ("" if none). */
MOKA_EXPORT const char *moka_last_error(void);

/** Releases a result's buffer and empties the tensor; tensors without an
 *  owner (and NULL) are left alone. */
MOKA_EXPORT void moka_tensor_release(moka_tensor *tensor);

/** Bytes per element of `dtype` (0 for an invalid dtype). */
MOKA_EXPORT size_t moka_dtype_size(moka_dtype dtype);

/** The number of elements of `tensor`: the product of its shape. */
MOKA_EXPORT int64_t moka_tensor_num_elements(const moka_tensor *tensor);

/** A tensor viewing `data` with the given dtype and shape (no copy). */
MOKA_EXPORT moka_tensor moka_tensor_view(void *data, moka_dtype dtype,
                                         int32_t rank, const int64_t *shape);

#ifdef __cplusplus
}
#endif

#endif /* MOKA_MOKA_H */
