// .npy reader and writer (NumPy format 1.0/2.0, little-endian, C order), so samples open with
// np.load.
#include "uotflow/io/npy.h"

#include "uotflow/core/error.h"
#include "uotflow/io/files.h"

#include <torch/torch.h>

#include <bit>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace uotflow {

// The raw bytes are copied as they are in memory, which is only the .npy byte order on
// little-endian hosts.
static_assert(std::endian::native == std::endian::little,
              "uotflow .npy I/O assumes a little-endian host");

namespace {

constexpr char kNpyMagic[] = "\x93NUMPY";
constexpr size_t kNpyMagicLen = 6;

struct NpyType {
  const char* descr;
  torch::ScalarType dtype;
};

constexpr NpyType kNpyTypes[] = {
    {"<f4", torch::kFloat32}, {"<f8", torch::kFloat64}, {"<i4", torch::kInt32},
    {"<i8", torch::kInt64},   {"|u1", torch::kUInt8},
};

std::string shape_tuple(torch::IntArrayRef sizes) {
  // Python tuple syntax: a one-element tuple needs its trailing comma.
  std::string out = "(";
  for (size_t i = 0; i < sizes.size(); ++i) {
    out += (i > 0 ? ", " : "") + std::to_string(sizes[i]);
  }
  return out + (sizes.size() == 1 ? ",)" : ")");
}

[[noreturn]] void npy_fail(const std::string& path, const std::string& problem) {
  throw ConfigError("invalid .npy file '" + path + "': " + problem);
}

// Returns the text right after `'key':` in the header dict, with leading spaces skipped.
std::string value_after(const std::string& header, const std::string& key,
                        const std::string& path) {
  const std::string quoted = "'" + key + "'";
  size_t pos = header.find(quoted);
  if (pos == std::string::npos) {
    npy_fail(path, "header has no " + quoted + " entry");
  }
  pos = header.find(':', pos + quoted.size());
  if (pos == std::string::npos) {
    npy_fail(path, "header entry " + quoted + " has no value");
  }
  pos = header.find_first_not_of(' ', pos + 1);
  return pos == std::string::npos ? "" : header.substr(pos);
}

std::vector<int64_t> parse_shape(const std::string& text, const std::string& path) {
  if (text.empty() || text[0] != '(') {
    npy_fail(path, "'shape' is not a tuple");
  }
  const size_t close = text.find(')');
  if (close == std::string::npos) {
    npy_fail(path, "'shape' tuple is not closed");
  }
  std::vector<int64_t> shape;
  const std::string inner = text.substr(1, close - 1);
  size_t pos = 0;
  while (pos < inner.size()) {
    pos = inner.find_first_not_of(" ,", pos);
    if (pos == std::string::npos) {
      break;
    }
    size_t end = inner.find_first_not_of("0123456789", pos);
    if (end == pos && inner[pos] == '-') {
      npy_fail(path,
               "'shape' has a negative size in " + text.substr(0, close + 1) + " (sizes are >= 0)");
    }
    if (end == pos) {
      npy_fail(path, "'shape' has a non-integer entry in " + text.substr(0, close + 1));
    }
    end = end == std::string::npos ? inner.size() : end;
    int64_t size = 0;
    const auto digits = inner.substr(pos, end - pos);
    const auto [last, error] = std::from_chars(digits.data(), digits.data() + digits.size(), size);
    if (error != std::errc()) {
      npy_fail(path, "'shape' has a size beyond 2^63 - 1 in " + text.substr(0, close + 1));
    }
    shape.push_back(size);
    // Files written by Python 2 may carry a long-integer suffix.
    pos = (end < inner.size() && inner[end] == 'L') ? end + 1 : end;
  }
  return shape;
}

uint64_t read_le(const std::string& bytes, size_t offset, size_t width) {
  uint64_t value = 0;
  for (size_t i = 0; i < width; ++i) {
    value |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[offset + i])) << (8 * i);
  }
  return value;
}

}  // namespace

std::string npy_bytes(const torch::Tensor& tensor, const std::string& path) {
  TORCH_CHECK(tensor.defined(), "save_npy('", path, "'): the tensor is undefined");
  const NpyType* type = nullptr;
  for (const auto& candidate : kNpyTypes) {
    if (candidate.dtype == tensor.scalar_type()) {
      type = &candidate;
    }
  }
  TORCH_CHECK(type != nullptr, "save_npy('", path, "'): unsupported dtype ", tensor.scalar_type(),
              " (accepted: float32, float64, int32, int64, uint8)");
  const torch::Tensor cpu = tensor.detach().to(torch::kCPU).contiguous();

  std::string dict = std::string("{'descr': '") + type->descr +
                     "', 'fortran_order': False, 'shape': " + shape_tuple(cpu.sizes()) + ", }";
  // Version 1.0 stores the header length in 2 bytes; only absurdly high-rank shapes need 2.0.
  const bool v2 = dict.size() + 1 + kNpyMagicLen + 4 > 65535;
  const size_t prefix = kNpyMagicLen + 2 + (v2 ? 4 : 2);
  // NumPy aligns the data to 64 bytes: pad the dict with spaces, the newline being the last header
  // byte.
  const size_t total = (prefix + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict.push_back('\n');

  const size_t nbytes = cpu.numel() * cpu.element_size();
  std::string out;
  out.reserve(total + nbytes);
  out.append(kNpyMagic, kNpyMagicLen);
  out.push_back(static_cast<char>(v2 ? 2 : 1));
  out.push_back(0);
  for (size_t i = 0; i < (v2 ? 4u : 2u); ++i) {
    out.push_back(static_cast<char>((dict.size() >> (8 * i)) & 0xff));
  }
  out += dict;
  out.append(static_cast<const char*>(cpu.data_ptr()), nbytes);
  return out;
}

void save_npy(const std::string& path, const torch::Tensor& tensor) {
  write_file_atomic(path, npy_bytes(tensor, path));
}

torch::Tensor load_npy(const std::string& path) {
  return parse_npy(read_file(path), path);
}

torch::Tensor parse_npy(const std::string& bytes, const std::string& path) {
  if (bytes.size() < kNpyMagicLen + 4 ||
      bytes.compare(0, kNpyMagicLen, kNpyMagic, kNpyMagicLen) != 0) {
    npy_fail(path, "bad magic (not a .npy file)");
  }
  const int major = static_cast<unsigned char>(bytes[kNpyMagicLen]);
  const int minor = static_cast<unsigned char>(bytes[kNpyMagicLen + 1]);
  // 2.0 and 3.0 differ from 1.0 only in a 4-byte header length (3.0 allows utf-8 in the dict).
  if (minor != 0 || major < 1 || major > 3) {
    npy_fail(path, "unsupported format version " + std::to_string(major) + "." +
                       std::to_string(minor) + " (accepted: 1.0, 2.0, 3.0)");
  }
  const size_t len_width = major == 1 ? 2 : 4;
  const size_t prefix = kNpyMagicLen + 2 + len_width;
  if (bytes.size() < prefix) {
    npy_fail(path, "truncated header");
  }
  const size_t header_len = read_le(bytes, kNpyMagicLen + 2, len_width);
  if (bytes.size() < prefix + header_len) {
    npy_fail(path, "truncated header: expected " + std::to_string(header_len) + " bytes");
  }
  const std::string header = bytes.substr(prefix, header_len);

  const std::string descr_text = value_after(header, "descr", path);
  const size_t quote_end =
      descr_text.empty() ? std::string::npos : descr_text.find(descr_text[0], 1);
  if (descr_text.empty() || (descr_text[0] != '\'' && descr_text[0] != '"') ||
      quote_end == std::string::npos) {
    npy_fail(path, "'descr' is not a string");
  }
  const std::string descr = descr_text.substr(1, quote_end - 1);
  const NpyType* type = nullptr;
  for (const auto& candidate : kNpyTypes) {
    if (descr == candidate.descr) {
      type = &candidate;
    }
  }
  if (type == nullptr) {
    const bool big_endian = !descr.empty() && descr[0] == '>';
    npy_fail(path, std::string(big_endian ? "big-endian " : "") + "dtype '" + descr +
                       "' is not supported (accepted: <f4, <f8, <i4, <i8, |u1)");
  }
  if (value_after(header, "fortran_order", path).rfind("False", 0) != 0) {
    npy_fail(path, "fortran_order must be False (save a C-ordered array)");
  }
  const std::vector<int64_t> shape = parse_shape(value_after(header, "shape", path), path);

  // Check the size before allocating, so a corrupt shape cannot ask for terabytes.
  const size_t found = bytes.size() - prefix - header_len;
  size_t expected = c10::elementSize(type->dtype);
  bool overflow = false;
  for (const int64_t dim : shape) {
    overflow = overflow || (dim != 0 && expected > SIZE_MAX / static_cast<size_t>(dim));
    expected = overflow ? 0 : expected * dim;
  }
  if (overflow) {
    npy_fail(path, "shape " + shape_tuple(shape) + " is too large");
  }
  if (found < expected) {
    throw ConfigError("truncated .npy file '" + path + "': expected " + std::to_string(expected) +
                      " bytes of data, found " + std::to_string(found));
  }
  torch::Tensor out = torch::empty(shape, torch::TensorOptions().dtype(type->dtype));
  if (expected > 0) {
    std::memcpy(out.data_ptr(), bytes.data() + prefix + header_len, expected);
  }
  return out;
}

}  // namespace uotflow
