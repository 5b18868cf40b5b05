//===- NpyTest.cpp - Tests of the .npy reader and writer ------------------===//

#include "moka/Runtime/Npy.h"

#include <gtest/gtest.h>

#include <cstring>

using namespace moka;

namespace {

NpyArray makeArray(NpyDType dtype, std::vector<int64_t> shape) {
  NpyArray a;
  a.dtype = dtype;
  a.shape = std::move(shape);
  a.data.resize(a.numElements() * npyElementSize(dtype));
  for (size_t i = 0; i < a.data.size(); ++i)
    a.data[i] = static_cast<char>(i * 7 + 3);
  return a;
}

TEST(Npy, RoundTripsEveryDType) {
  for (NpyDType dtype : {NpyDType::F64, NpyDType::F32, NpyDType::F16,
                         NpyDType::U16, NpyDType::I8, NpyDType::I32,
                         NpyDType::I64, NpyDType::U8, NpyDType::Bool}) {
    for (std::vector<int64_t> shape :
         {std::vector<int64_t>{}, {0}, {5}, {2, 3, 4}}) {
      NpyArray a = makeArray(dtype, shape);
      std::string bytes = serializeNpy(a);
      // The header is padded so the data starts 64-byte aligned.
      size_t headerLen = static_cast<unsigned char>(bytes[8]) |
                         (static_cast<unsigned char>(bytes[9]) << 8);
      EXPECT_EQ((10 + headerLen) % 64, 0u);
      NpyArray b;
      std::string error;
      ASSERT_TRUE(parseNpy(bytes, b, error)) << error;
      EXPECT_EQ(b.dtype, a.dtype);
      EXPECT_EQ(b.shape, a.shape);
      EXPECT_EQ(b.data, a.data);
    }
  }
}

TEST(Npy, ParsesNumpyWrittenHeader) {
  // The exact header numpy 1.24 writes for np.zeros((2, 3), np.float32).
  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  header.append(128 - 10 - header.size() - 1, ' ');
  header += '\n';
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
  bytes += static_cast<char>(header.size());
  bytes += '\0';
  bytes += header;
  bytes.append(24, '\0');
  NpyArray a;
  std::string error;
  ASSERT_TRUE(parseNpy(bytes, a, error)) << error;
  EXPECT_EQ(a.dtype, NpyDType::F32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
}

TEST(Npy, RejectsMalformedInput) {
  NpyArray a = makeArray(NpyDType::F32, {4, 4});
  std::string good = serializeNpy(a);
  NpyArray out;
  std::string error;

  EXPECT_FALSE(parseNpy("", out, error));
  EXPECT_NE(error.find("magic"), std::string::npos);
  EXPECT_FALSE(parseNpy(good.substr(0, 20), out, error));
  EXPECT_NE(error.find("truncated .npy header"), std::string::npos);
  EXPECT_FALSE(parseNpy(good.substr(0, good.size() - 1), out, error));
  EXPECT_NE(error.find("truncated .npy data"), std::string::npos);

  std::string fortran = good;
  size_t pos = fortran.find("False");
  fortran.replace(pos, 5, "True ");
  EXPECT_FALSE(parseNpy(fortran, out, error));
  EXPECT_NE(error.find("Fortran"), std::string::npos);

  std::string bigEndian = good;
  bigEndian.replace(bigEndian.find("<f4"), 3, ">f4");
  EXPECT_FALSE(parseNpy(bigEndian, out, error));
  EXPECT_NE(error.find("unsupported .npy dtype"), std::string::npos);

  std::string badShape = good;
  badShape.replace(badShape.find("(4, 4)"), 6, "(4, x)");
  EXPECT_FALSE(parseNpy(badShape, out, error));
  EXPECT_NE(error.find("malformed .npy shape"), std::string::npos);
}

TEST(Npy, ReportsMissingFile) {
  NpyArray out;
  std::string error;
  EXPECT_FALSE(readNpyFile("/nonexistent/moka.npy", out, error));
  EXPECT_NE(error.find("cannot open"), std::string::npos);
}

} // namespace
