//===- Npy.cpp - Reading and writing NumPy .npy files ---------------------===//
//
// Parses and writes the .npy header (a Python dict literal) and the raw data.
//
//===----------------------------------------------------------------------===//

#include "moka/Runtime/Npy.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

using namespace moka;

namespace {

struct DTypeInfo {
  NpyDType dtype;
  const char *descr;
  size_t size;
};

const DTypeInfo kDTypes[] = {
    {NpyDType::F64, "<f8", 8},  {NpyDType::F32, "<f4", 4},
    {NpyDType::F16, "<f2", 2},  {NpyDType::U16, "<u2", 2},
    {NpyDType::I8, "|i1", 1},   {NpyDType::I32, "<i4", 4},
    {NpyDType::I64, "<i8", 8},  {NpyDType::U8, "|u1", 1},
    {NpyDType::Bool, "|b1", 1},
};

/// Finds the value that follows `'key':` in the header dict.
bool findValue(const std::string &header, const std::string &key,
               std::string &value) {
  size_t pos = header.find("'" + key + "'");
  if (pos == std::string::npos)
    return false;
  pos = header.find(':', pos);
  if (pos == std::string::npos)
    return false;
  ++pos;
  while (pos < header.size() && header[pos] == ' ')
    ++pos;
  if (pos >= header.size())
    return false;
  char open = header[pos];
  size_t end;
  if (open == '\'') {
    end = header.find('\'', pos + 1);
    if (end == std::string::npos)
      return false;
    value = header.substr(pos + 1, end - pos - 1);
    return true;
  }
  if (open == '(') {
    end = header.find(')', pos);
    if (end == std::string::npos)
      return false;
    value = header.substr(pos + 1, end - pos - 1);
    return true;
  }
  end = header.find_first_of(",}", pos);
  if (end == std::string::npos)
    return false;
  value = header.substr(pos, end - pos);
  while (!value.empty() && value.back() == ' ')
    value.pop_back();
  return true;
}

} // namespace

const char *moka::npyDescr(NpyDType dtype) {
  for (const DTypeInfo &info : kDTypes)
    if (info.dtype == dtype)
      return info.descr;
  return "?";
}

size_t moka::npyElementSize(NpyDType dtype) {
  for (const DTypeInfo &info : kDTypes)
    if (info.dtype == dtype)
      return info.size;
  return 0;
}

int64_t NpyArray::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

bool moka::parseNpy(const std::string &bytes, NpyArray &out,
                    std::string &error) {
  static const char kMagic[] = "\x93NUMPY";
  if (bytes.size() < 10 || std::memcmp(bytes.data(), kMagic, 6) != 0) {
    error = "not a .npy file (bad magic string)";
    return false;
  }
  unsigned major = static_cast<unsigned char>(bytes[6]);
  size_t headerLen, headerStart;
  if (major == 1) {
    headerLen = static_cast<unsigned char>(bytes[8]) |
                (static_cast<unsigned char>(bytes[9]) << 8);
    headerStart = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) {
      error = "truncated .npy header";
      return false;
    }
    headerLen = 0;
    for (int i = 3; i >= 0; --i)
      headerLen = (headerLen << 8) | static_cast<unsigned char>(bytes[8 + i]);
    headerStart = 12;
  } else {
    error = "unsupported .npy format version " + std::to_string(major);
    return false;
  }
  if (bytes.size() < headerStart + headerLen) {
    error = "truncated .npy header";
    return false;
  }
  std::string header = bytes.substr(headerStart, headerLen);

  std::string descr, order, shape;
  if (!findValue(header, "descr", descr) ||
      !findValue(header, "fortran_order", order) ||
      !findValue(header, "shape", shape)) {
    error = "malformed .npy header: " + header;
    return false;
  }
  if (order != "False") {
    error = "Fortran-ordered .npy arrays are not supported; save a "
            "C-contiguous array";
    return false;
  }
  bool found = false;
  for (const DTypeInfo &info : kDTypes) {
    if (descr == info.descr ||
        (info.size == 1 && descr.size() == 3 &&
         descr.substr(1) == std::string(info.descr + 1) &&
         (descr[0] == '<' || descr[0] == '>'))) {
      out.dtype = info.dtype;
      found = true;
      break;
    }
  }
  if (!found) {
    error = "unsupported .npy dtype '" + descr +
            "' (expected little-endian f8, f4, f2, u2, i1, u1, b1, i4 or i8)";
    return false;
  }

  out.shape.clear();
  std::stringstream dims(shape);
  std::string item;
  while (std::getline(dims, item, ',')) {
    size_t b = item.find_first_not_of(" ");
    if (b == std::string::npos)
      continue;
    item = item.substr(b);
    while (!item.empty() && (item.back() == ' ' || item.back() == 'L'))
      item.pop_back();
    char *end = nullptr;
    long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 0) {
      error = "malformed .npy shape (" + shape + ")";
      return false;
    }
    out.shape.push_back(v);
  }

  // The byte count, refusing shapes whose product overflows: such a header
  // cannot describe data that is present.
  size_t available = bytes.size() - headerStart - headerLen;
  size_t expected = npyElementSize(out.dtype);
  bool overflow = false;
  for (int64_t d : out.shape) {
    if (d != 0 && expected > SIZE_MAX / static_cast<size_t>(d)) {
      overflow = true;
      break;
    }
    expected *= static_cast<size_t>(d);
  }
  if (overflow) {
    error = "malformed .npy shape (" + shape + "): its size overflows";
    return false;
  }
  if (available < expected) {
    error = "truncated .npy data: expected " + std::to_string(expected) +
            " bytes, found " + std::to_string(available);
    return false;
  }
  out.data.assign(bytes.begin() + headerStart + headerLen,
                  bytes.begin() + headerStart + headerLen + expected);
  return true;
}

bool moka::readNpyFile(const std::string &path, NpyArray &out,
                       std::string &error) {
  // Devices and pipes (/dev/zero) would be read without end.
  struct stat info;
  if (::stat(path.c_str(), &info) == 0 && !S_ISREG(info.st_mode)) {
    error = "'" + path + "' is not a regular file";
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open '" + path + "'";
    return false;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (!parseNpy(buffer.str(), out, error)) {
    error = "'" + path + "': " + error;
    return false;
  }
  return true;
}

std::string moka::serializeNpy(const NpyArray &array) {
  std::string header = "{'descr': '";
  header += npyDescr(array.dtype);
  header += "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < array.shape.size(); ++i) {
    header += std::to_string(array.shape[i]);
    if (array.shape.size() == 1 || i + 1 < array.shape.size())
      header += ",";
    if (i + 1 < array.shape.size())
      header += " ";
  }
  header += "), }";
  // Magic (6) + version (2) + length (2) + header + '\n', padded to 64.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>((header.size() >> 8) & 0xff);
  out += header;
  out.append(array.data.begin(), array.data.end());
  return out;
}

bool moka::writeNpyFile(const std::string &path, const NpyArray &array,
                        std::string &error) {
  std::ofstream out(path, std::ios::binary);
  if (!out) {
    error = "cannot open '" + path + "' for writing";
    return false;
  }
  std::string bytes = serializeNpy(array);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    error = "failed to write '" + path + "'";
    return false;
  }
  return true;
}
