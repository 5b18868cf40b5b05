//===- Npy.h - Reading and writing NumPy .npy files -------------*- C++ -*-===//
//
// A minimal reader and writer of NumPy's .npy format (version 1.0-3.0,
// little-endian, C order) for the dtypes moka exchanges with its users.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_RUNTIME_NPY_H
#define MOKA_RUNTIME_NPY_H

#include <cstdint>
#include <string>
#include <vector>

namespace moka {

/// Element types of .npy arrays that moka reads and writes. bf16 has no NumPy
/// dtype: it is stored as uint16 ('<u2') holding the raw bfloat16 bits.
enum class NpyDType { F64, F32, F16, U16, I8, I32, I64, U8, Bool };

/// The dtype descriptor string ('<f4', ...) and element size of `dtype`.
const char *npyDescr(NpyDType dtype);
size_t npyElementSize(NpyDType dtype);

struct NpyArray {
  NpyDType dtype = NpyDType::F32;
  std::vector<int64_t> shape;
  std::vector<char> data; ///< C order, little-endian.

  int64_t numElements() const;
};

/// Parses .npy bytes. Returns false and sets `error` on malformed or
/// unsupported content (Fortran order, big-endian, object or unknown dtypes,
/// truncated data).
bool parseNpy(const std::string &bytes, NpyArray &out, std::string &error);

/// Reads a .npy file; false with `error` set when it cannot be read or parsed.
bool readNpyFile(const std::string &path, NpyArray &out, std::string &error);

/// Serializes `array` as .npy (version 1.0).
std::string serializeNpy(const NpyArray &array);

/// Writes `array` to `path`; false with `error` set on failure.
bool writeNpyFile(const std::string &path, const NpyArray &array,
                  std::string &error);

} // namespace moka

#endif // MOKA_RUNTIME_NPY_H
