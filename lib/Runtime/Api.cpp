//===- Api.cpp - The C interface of moka-compiled models ------------------===//
//
// Argument validation, memref descriptors and result ownership for the C ABI
// functions `mokac` generates (moka/moka.h, moka/Runtime/Invoke.h).
//
//===----------------------------------------------------------------------===//

#include "moka/Runtime/Allocator.h"
#include "moka/Runtime/Invoke.h"
#include "moka/moka.h"

#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

thread_local std::string lastError;
// The jump target of the mokaInvoke running on this thread, if any.
thread_local std::jmp_buf *checkTarget = nullptr;
thread_local const char *checkMessage = nullptr;

struct TensorType {
  moka_dtype dtype = MOKA_DTYPE_INVALID;
  std::vector<int64_t> shape; // -1: dynamic.
};

struct Signature {
  std::string name;
  std::vector<TensorType> inputs, results;
};

moka_dtype parseDType(const std::string &s) {
  static const struct {
    const char *name;
    moka_dtype dtype;
  } table[] = {{"f32", MOKA_DTYPE_F32}, {"f64", MOKA_DTYPE_F64},
               {"f16", MOKA_DTYPE_F16}, {"bf16", MOKA_DTYPE_BF16},
               {"i1", MOKA_DTYPE_BOOL}, {"i8", MOKA_DTYPE_I8},
               {"i32", MOKA_DTYPE_I32}, {"i64", MOKA_DTYPE_I64}};
  for (const auto &entry : table)
    if (s == entry.name)
      return entry.dtype;
  return MOKA_DTYPE_INVALID;
}

const char *dtypeName(moka_dtype dtype) {
  switch (dtype) {
  case MOKA_DTYPE_F32:
    return "f32";
  case MOKA_DTYPE_F64:
    return "f64";
  case MOKA_DTYPE_F16:
    return "f16";
  case MOKA_DTYPE_BF16:
    return "bf16";
  case MOKA_DTYPE_BOOL:
    return "bool";
  case MOKA_DTYPE_I8:
    return "i8";
  case MOKA_DTYPE_I32:
    return "i32";
  case MOKA_DTYPE_I64:
    return "i64";
  default:
    return "invalid";
  }
}

/// Parses `name(t,...)->(t,...)` with t = `dtype[d0xd1x...]`, `?` dynamic.
bool parseList(const char *&p, std::vector<TensorType> &out) {
  if (*p++ != '(')
    return false;
  while (*p && *p != ')') {
    TensorType type;
    std::string dtype;
    while (*p && *p != '[')
      dtype += *p++;
    type.dtype = parseDType(dtype);
    if (type.dtype == MOKA_DTYPE_INVALID || *p++ != '[')
      return false;
    while (*p && *p != ']') {
      if (*p == '?') {
        type.shape.push_back(-1);
        ++p;
      } else {
        char *end;
        type.shape.push_back(std::strtoll(p, &end, 10));
        if (end == p)
          return false;
        p = end;
      }
      if (*p == 'x')
        ++p;
    }
    if (*p++ != ']')
      return false;
    out.push_back(std::move(type));
    if (*p == ',')
      ++p;
  }
  return *p++ == ')';
}

bool parseSignature(const char *text, Signature &sig) {
  const char *p = text;
  while (*p && *p != '(')
    sig.name += *p++;
  if (!parseList(p, sig.inputs) || std::strncmp(p, "->", 2) != 0)
    return false;
  p += 2;
  return parseList(p, sig.results) && *p == '\0';
}

/// A shape as text; in a signature a negative size is a dynamic one ('?'),
/// in a caller's tensor it is printed as it is.
std::string shapeString(const int64_t *shape, size_t rank,
                        bool signature = false) {
  std::string s = "[";
  for (size_t i = 0; i < rank; ++i) {
    if (i)
      s += "x";
    s +=
        signature && shape[i] < 0 ? std::string("?") : std::to_string(shape[i]);
  }
  return s + "]";
}

std::string typeString(const TensorType &type) {
  return std::string(dtypeName(type.dtype)) +
         shapeString(type.shape.data(), type.shape.size(), /*signature=*/true);
}

int32_t fail(moka_status status, const std::string &message) {
  lastError = message;
  return status;
}

/// A ranked memref descriptor: allocated, aligned, offset, sizes, strides.
std::vector<int64_t> descriptor(void *data, const int64_t *shape, size_t rank) {
  std::vector<int64_t> words(3 + 2 * rank);
  words[0] = reinterpret_cast<int64_t>(data);
  words[1] = reinterpret_cast<int64_t>(data);
  words[2] = 0;
  int64_t stride = 1;
  for (size_t d = rank; d-- > 0;) {
    words[3 + d] = shape[d];
    words[3 + rank + d] = stride;
    stride *= shape[d];
  }
  return words;
}

/// Runs `packed` with a jump target for failed run-time checks; returns the
/// check's message, or null when the function returned normally. Nothing
/// with a destructor lives in this frame, so unwinding to it is sound.
const char *callGuarded(void (*packed)(void **), void **argv) {
  std::jmp_buf target;
  std::jmp_buf *outer = checkTarget;
  checkTarget = &target;
  if (setjmp(target) != 0) {
    checkTarget = outer;
    return checkMessage ? checkMessage : "run-time check failed";
  }
  packed(argv);
  checkTarget = outer;
  return nullptr;
}

bool multiplyChecked(int64_t a, int64_t b, int64_t &out) {
  return !__builtin_mul_overflow(a, b, &out);
}

} // namespace

extern "C" {

const char *moka_last_error(void) { return lastError.c_str(); }

size_t moka_dtype_size(moka_dtype dtype) {
  // A C caller may pass any int: compare the integer, not the enum.
  int raw;
  std::memcpy(&raw, &dtype, sizeof(raw));
  switch (raw) {
  case MOKA_DTYPE_F64:
  case MOKA_DTYPE_I64:
    return 8;
  case MOKA_DTYPE_F32:
  case MOKA_DTYPE_I32:
    return 4;
  case MOKA_DTYPE_F16:
  case MOKA_DTYPE_BF16:
    return 2;
  case MOKA_DTYPE_BOOL:
  case MOKA_DTYPE_I8:
    return 1;
  default:
    return 0;
  }
}

int64_t moka_tensor_num_elements(const moka_tensor *tensor) {
  if (!tensor || tensor->rank < 0 || tensor->rank > MOKA_MAX_RANK)
    return 0;
  int64_t count = 1;
  for (int32_t d = 0; d < tensor->rank; ++d)
    if (tensor->shape[d] < 0 ||
        !multiplyChecked(count, tensor->shape[d], count))
      return 0;
  return count;
}

moka_tensor moka_tensor_view(void *data, moka_dtype dtype, int32_t rank,
                             const int64_t *shape) {
  moka_tensor t;
  std::memset(&t, 0, sizeof(t));
  t.data = data;
  t.dtype = dtype;
  t.rank = rank < 0 ? 0 : (rank > MOKA_MAX_RANK ? MOKA_MAX_RANK : rank);
  for (int32_t d = 0; d < t.rank && shape; ++d)
    t.shape[d] = shape[d];
  return t;
}

void moka_tensor_release(moka_tensor *tensor) {
  if (!tensor || !tensor->owner)
    return;
  mokaFree(tensor->owner);
  std::memset(tensor, 0, sizeof(*tensor));
}

bool mokaAllocOwns(void *ptr);

[[noreturn]] void mokaCheckFailed(const char *message) {
  if (checkTarget) {
    checkMessage = message;
    std::longjmp(*checkTarget, 1);
  }
  std::fprintf(stderr, "moka: run-time check failed: %s\n",
               message ? message : "");
  std::abort();
}

int32_t mokaInvoke(const char *signatureText, void **tensors,
                   void (*packed)(void **)) {
  Signature sig;
  if (!signatureText || !parseSignature(signatureText, sig))
    return fail(MOKA_ERROR_INVALID_ARGUMENT,
                "moka: corrupt function signature in the compiled model");
  const std::string fn = sig.name + ": ";
  size_t numIn = sig.inputs.size(), numOut = sig.results.size();

  // Result structs must be distinct from the arguments (which are read
  // after the results have been emptied) and from each other.
  for (size_t i = 0; i < numOut; ++i) {
    void *out = tensors[numIn + i];
    if (!out)
      return fail(MOKA_ERROR_INVALID_ARGUMENT,
                  fn + "result #" + std::to_string(i) + " is a null pointer");
    for (size_t j = 0; j < numIn; ++j)
      if (tensors[j] == out)
        return fail(MOKA_ERROR_INVALID_ARGUMENT,
                    fn + "result #" + std::to_string(i) +
                        " is the same moka_tensor as argument #" +
                        std::to_string(j));
    for (size_t j = 0; j < i; ++j)
      if (tensors[numIn + j] == out)
        return fail(MOKA_ERROR_INVALID_ARGUMENT,
                    fn + "results #" + std::to_string(j) + " and #" +
                        std::to_string(i) + " are the same moka_tensor");
  }
  for (size_t i = 0; i < numOut; ++i)
    std::memset(tensors[numIn + i], 0, sizeof(moka_tensor));

  // Validate the arguments and build their descriptors.
  std::vector<std::vector<int64_t>> descriptors(numIn);
  std::vector<void *> inputData(numIn);
  for (size_t i = 0; i < numIn; ++i) {
    const TensorType &expected = sig.inputs[i];
    auto *t = static_cast<const moka_tensor *>(tensors[i]);
    std::string arg = fn + "argument #" + std::to_string(i) + " ";
    if (!t)
      return fail(MOKA_ERROR_INVALID_ARGUMENT, arg + "is a null pointer");
    // The caller's dtype as the integer C stores: a value outside the enum
    // is an error to report, not a value C++ may assume away.
    int rawDtype;
    static_assert(sizeof(rawDtype) == sizeof(t->dtype), "enum is an int");
    std::memcpy(&rawDtype, &t->dtype, sizeof(rawDtype));
    if (rawDtype != static_cast<int>(expected.dtype))
      return fail(
          MOKA_ERROR_INVALID_ARGUMENT,
          arg + "has dtype " +
              (rawDtype >= MOKA_DTYPE_INVALID && rawDtype <= MOKA_DTYPE_I64
                   ? std::string(dtypeName(static_cast<moka_dtype>(rawDtype)))
                   : "invalid (code " + std::to_string(rawDtype) + ")") +
              ", expected " + typeString(expected));
    if (t->rank < 0 || t->rank > MOKA_MAX_RANK ||
        static_cast<size_t>(t->rank) != expected.shape.size())
      return fail(MOKA_ERROR_INVALID_ARGUMENT,
                  arg + "has rank " + std::to_string(t->rank) + ", expected " +
                      typeString(expected));
    int64_t count = 1;
    for (int32_t d = 0; d < t->rank; ++d) {
      int64_t size = t->shape[d];
      if (size < 0 || (expected.shape[d] >= 0 && size != expected.shape[d]))
        return fail(MOKA_ERROR_INVALID_ARGUMENT,
                    arg + "has shape " + shapeString(t->shape, t->rank) +
                        ", expected " + typeString(expected));
      if (!multiplyChecked(count, size, count))
        return fail(MOKA_ERROR_INVALID_ARGUMENT, arg + "has too many elements");
    }
    size_t eltSize = moka_dtype_size(t->dtype);
    int64_t bytes;
    if (!multiplyChecked(count, static_cast<int64_t>(eltSize), bytes))
      return fail(MOKA_ERROR_INVALID_ARGUMENT, arg + "has too many elements");
    if (!t->data && count > 0)
      return fail(MOKA_ERROR_INVALID_ARGUMENT, arg + "has a null data pointer");
    if (reinterpret_cast<uintptr_t>(t->data) % eltSize != 0)
      return fail(MOKA_ERROR_INVALID_ARGUMENT,
                  arg + "data is not aligned to its element size");
    inputData[i] = t->data;
    descriptors[i] = descriptor(t->data, t->shape, t->rank);
  }

  // Result descriptors lie back to back, as the ciface wrapper expects.
  std::vector<size_t> resultOffsets;
  size_t resultWords = 0;
  for (const TensorType &r : sig.results) {
    resultOffsets.push_back(resultWords);
    resultWords += 3 + 2 * r.shape.size();
  }
  std::vector<int64_t> results(resultWords ? resultWords : 1);
  void *resultPointer = results.data();
  std::vector<void *> descriptorPointers(numIn);
  std::vector<void *> argv;
  if (numOut)
    argv.push_back(resultPointer);
  for (size_t i = 0; i < numIn; ++i) {
    descriptorPointers[i] = descriptors[i].data();
    argv.push_back(descriptorPointers[i]);
  }

  if (const char *message = callGuarded(packed, argv.data()))
    return fail(MOKA_ERROR_RUNTIME_CHECK, fn + message);

  // Hand over the results: a contiguous buffer the allocator owns and no
  // other result or argument uses is passed on as is; anything else (an
  // argument returned, a constant, a strided view) is copied.
  std::vector<void *> claimed, released;
  for (size_t r = 0; r < numOut; ++r) {
    const TensorType &type = sig.results[r];
    size_t rank = type.shape.size();
    const int64_t *w = results.data() + resultOffsets[r];
    void *allocated = reinterpret_cast<void *>(w[0]);
    char *aligned = reinterpret_cast<char *>(w[1]);
    int64_t offset = w[2];
    const int64_t *sizes = w + 3, *strides = w + 3 + rank;
    auto *out = static_cast<moka_tensor *>(tensors[numIn + r]);
    out->dtype = type.dtype;
    out->rank = static_cast<int32_t>(rank);
    size_t eltSize = moka_dtype_size(type.dtype);
    int64_t count = 1;
    bool contiguous = true;
    for (size_t d = rank; d-- > 0;) {
      out->shape[d] = sizes[d];
      if (sizes[d] != 1 && strides[d] != count)
        contiguous = false;
      count *= sizes[d];
    }
    bool owned = mokaAllocOwns(allocated);
    for (void *p : inputData)
      owned = owned && p != allocated;
    for (void *p : claimed)
      owned = owned && p != allocated;
    if (owned && contiguous) {
      out->data = aligned + offset * eltSize;
      out->owner = allocated;
      claimed.push_back(allocated);
      continue;
    }
    void *copy = mokaAlloc(count * eltSize);
    if (!copy) {
      // Nothing reaches the caller: free what was handed over or kept.
      for (size_t q = 0; q < r; ++q)
        moka_tensor_release(static_cast<moka_tensor *>(tensors[numIn + q]));
      std::memset(out, 0, sizeof(*out));
      for (void *p : released)
        mokaFree(p);
      for (size_t q = r; q < numOut; ++q) {
        void *allocated = reinterpret_cast<void *>(results[resultOffsets[q]]);
        bool mine = mokaAllocOwns(allocated);
        for (void *p : inputData)
          mine = mine && p != allocated;
        for (void *p : claimed)
          mine = mine && p != allocated;
        if (mine) {
          claimed.push_back(allocated);
          mokaFree(allocated);
        }
      }
      return fail(MOKA_ERROR_OUT_OF_MEMORY,
                  fn + "out of memory copying result #" + std::to_string(r));
    }
    std::vector<int64_t> index(rank, 0);
    for (int64_t e = 0; e < count; ++e) {
      int64_t linear = offset;
      for (size_t d = 0; d < rank; ++d)
        linear += index[d] * strides[d];
      std::memcpy(static_cast<char *>(copy) + e * eltSize,
                  aligned + linear * eltSize, eltSize);
      for (size_t d = rank; d-- > 0;) {
        if (++index[d] < sizes[d])
          break;
        index[d] = 0;
      }
    }
    out->data = copy;
    out->owner = copy;
    // A buffer of ours that no result keeps is released once every result
    // has been copied out of it.
    if (owned) {
      claimed.push_back(allocated);
      released.push_back(allocated);
    }
  }
  for (void *p : released)
    mokaFree(p);
  lastError.clear();
  return MOKA_OK;
}

} // extern "C"
