// .npz files: a ZIP archive of .npy members, written with stored (uncompressed) entries as
// np.savez does. The ZIP container is small enough to write here, which keeps the library's only
// hard dependency LibTorch (the CUDA machines we target have no libzip).
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <string>

#include "uotflow/core/error.h"
#include "uotflow/io/files.h"
#include "uotflow/io/npy.h"

namespace uotflow {
namespace {

constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint32_t kCentralHeader = 0x02014b50;
constexpr uint32_t kEndOfCentral = 0x06054b50;
constexpr size_t kLocalHeaderSize = 30;
constexpr size_t kCentralHeaderSize = 46;
constexpr size_t kEndOfCentralSize = 22;
constexpr uint16_t kDosDate1980 = 0x21;  // 1980-01-01: fixed, so equal contents give equal files

uint32_t crc32(const std::string& bytes) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) {
        c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      }
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (const char b : bytes) {
    c = table[(c ^ static_cast<unsigned char>(b)) & 0xff] ^ (c >> 8);
  }
  return c ^ 0xFFFFFFFFu;
}

void put(std::string& out, uint64_t value, size_t width) {
  for (size_t i = 0; i < width; ++i) {
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }
}

uint64_t get(const std::string& in, size_t offset, size_t width) {
  uint64_t value = 0;
  for (size_t i = 0; i < width; ++i) {
    value |= static_cast<uint64_t>(static_cast<unsigned char>(in[offset + i])) << (8 * i);
  }
  return value;
}

// The fields local and central headers share, from "version needed" to the name length.
void put_entry_fields(std::string& out, uint32_t crc, uint64_t size, size_t name_size) {
  put(out, 20, 2);  // version needed: 2.0
  put(out, 0, 2);   // flags
  put(out, 0, 2);   // method: stored
  put(out, 0, 2);   // time
  put(out, kDosDate1980, 2);
  put(out, crc, 4);
  put(out, size, 4);  // compressed size
  put(out, size, 4);  // uncompressed size
  put(out, name_size, 2);
}

[[noreturn]] void npz_fail(const std::string& path, const std::string& problem) {
  throw ConfigError("invalid .npz file '" + path + "': " + problem);
}

}  // namespace

void save_npz(const std::string& path, const std::map<std::string, torch::Tensor>& arrays) {
  std::string out;
  std::string central;
  for (const auto& [name, tensor] : arrays) {
    TORCH_CHECK(!name.empty() && name.find('/') == std::string::npos, "save_npz('", path,
                "'): bad array name '", name, "'");
    const std::string member = name + ".npy";
    const std::string data = npy_bytes(tensor, path + ":" + member);
    TORCH_CHECK(data.size() < 0xFFFFFFFFu, "save_npz('", path, "'): array '", name,
                "' is over 4 GiB (ZIP64 is not written)");
    const uint32_t crc = crc32(data);
    const uint64_t offset = out.size();
    put(out, kLocalHeader, 4);
    put_entry_fields(out, crc, data.size(), member.size());
    put(out, 0, 2);  // extra field length
    out += member;
    out += data;
    put(central, kCentralHeader, 4);
    put(central, 20, 2);  // version made by
    put_entry_fields(central, crc, data.size(), member.size());
    put(central, 0, 2);  // extra length
    put(central, 0, 2);  // comment length
    put(central, 0, 2);  // disk number
    put(central, 0, 2);  // internal attributes
    put(central, 0, 4);  // external attributes
    put(central, offset, 4);
    central += member;
  }
  const uint64_t central_offset = out.size();
  out += central;
  put(out, kEndOfCentral, 4);
  put(out, 0, 2);  // this disk
  put(out, 0, 2);  // disk of the central directory
  put(out, arrays.size(), 2);
  put(out, arrays.size(), 2);
  put(out, central.size(), 4);
  put(out, central_offset, 4);
  put(out, 0, 2);  // comment length
  write_file_atomic(path, out);
}

std::map<std::string, torch::Tensor> load_npz(const std::string& path) {
  const std::string in = read_file(path);
  // The end record sits at the end, before a comment of at most 64 KiB.
  size_t end = std::string::npos;
  for (size_t i = in.size() >= kEndOfCentralSize ? in.size() - kEndOfCentralSize + 1 : 0;
       i-- > 0 && in.size() - i <= kEndOfCentralSize + 0xFFFF;) {
    if (get(in, i, 4) == kEndOfCentral) {
      end = i;
      break;
    }
  }
  if (end == std::string::npos) {
    npz_fail(path, "no ZIP end record (not an .npz, or truncated)");
  }
  const uint64_t entries = get(in, end + 10, 2);
  size_t pos = get(in, end + 16, 4);
  std::map<std::string, torch::Tensor> out;
  for (uint64_t e = 0; e < entries; ++e) {
    if (pos + kCentralHeaderSize > end || get(in, pos, 4) != kCentralHeader) {
      npz_fail(path, "corrupt central directory");
    }
    const uint64_t method = get(in, pos + 10, 2);
    const uint64_t crc = get(in, pos + 16, 4);
    const uint64_t size = get(in, pos + 20, 4);
    const uint64_t name_size = get(in, pos + 28, 2);
    const uint64_t extra_size = get(in, pos + 30, 2);
    const uint64_t comment_size = get(in, pos + 32, 2);
    const uint64_t local = get(in, pos + 42, 4);
    const std::string name = in.substr(pos + kCentralHeaderSize, name_size);
    pos += kCentralHeaderSize + name_size + extra_size + comment_size;
    if (method != 0) {
      npz_fail(path,
               "member '" + name + "' is compressed; save with np.savez, not savez_compressed");
    }
    if (local + kLocalHeaderSize > in.size() || get(in, local, 4) != kLocalHeader) {
      npz_fail(path, "member '" + name + "' has no local header");
    }
    const size_t data = local + kLocalHeaderSize + get(in, local + 26, 2) + get(in, local + 28, 2);
    if (data + size > in.size()) {
      npz_fail(path, "member '" + name + "' is truncated");
    }
    const std::string bytes = in.substr(data, size);
    if (crc32(bytes) != crc) {
      npz_fail(path, "member '" + name + "' fails its CRC check");
    }
    const std::string key =
        name.size() > 4 && name.ends_with(".npy") ? name.substr(0, name.size() - 4) : name;
    out[key] = parse_npy(bytes, path + ":" + name);
  }
  return out;
}

}  // namespace uotflow
