// safetensors reader and writer: u64 header length, JSON header, raw little-endian tensor data.
#include "uotflow/io/safetensors.h"

#include "uotflow/core/config.h"
#include "uotflow/core/error.h"
#include "uotflow/io/files.h"

#include <torch/torch.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace uotflow {

static_assert(std::endian::native == std::endian::little,
              "uotflow safetensors I/O assumes a little-endian host");

namespace {

constexpr const char* kMetadataKey = "__metadata__";
// Real headers are a few kB; a huge length means a corrupt or foreign file, not a large model.
constexpr uint64_t kMaxHeaderLen = 100 * 1024 * 1024;

struct SafetensorsType {
  const char* name;
  torch::ScalarType dtype;
};

constexpr SafetensorsType kSafetensorsTypes[] = {
    {"F32", torch::kFloat32},   {"F64", torch::kFloat64}, {"F16", torch::kFloat16},
    {"BF16", torch::kBFloat16}, {"I64", torch::kInt64},   {"I32", torch::kInt32},
    {"U8", torch::kUInt8},      {"BOOL", torch::kBool},
};

[[noreturn]] void safetensors_fail(const std::string& path, const std::string& problem) {
  throw ConfigError("invalid safetensors file '" + path + "': " + problem);
}

}  // namespace

void save_safetensors(const std::string& path,
                      const std::map<std::string, torch::Tensor>& tensors) {
  Json header = Json::object();
  header[kMetadataKey] = {{"format", "pt"}};
  std::vector<torch::Tensor> contiguous;
  uint64_t offset = 0;
  // std::map iterates in key order, which fixes the data layout and makes the output reproducible.
  for (const auto& [name, tensor] : tensors) {
    TORCH_CHECK(name != kMetadataKey, "save_safetensors('", path, "'): '", name,
                "' is a reserved name");
    TORCH_CHECK(tensor.defined(), "save_safetensors('", path, "'): tensor '", name,
                "' is undefined");
    const SafetensorsType* type = nullptr;
    for (const auto& candidate : kSafetensorsTypes) {
      if (candidate.dtype == tensor.scalar_type()) {
        type = &candidate;
      }
    }
    TORCH_CHECK(type != nullptr, "save_safetensors('", path, "'): tensor '", name,
                "' has unsupported dtype ", tensor.scalar_type(),
                " (accepted: float32, float64, float16, bfloat16, int64, int32, "
                "uint8, bool)");
    contiguous.push_back(tensor.detach().to(torch::kCPU).contiguous());
    const uint64_t nbytes = contiguous.back().numel() * contiguous.back().element_size();
    header[name] = {{"dtype", type->name},
                    {"shape", contiguous.back().sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  // Padding the header to 8 bytes keeps the data start aligned for readers that map the file.
  text.append((8 - text.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(8 + text.size() + offset);
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<char>((static_cast<uint64_t>(text.size()) >> (8 * i)) & 0xff));
  }
  out += text;
  for (const auto& tensor : contiguous) {
    out.append(static_cast<const char*>(tensor.data_ptr()), tensor.numel() * tensor.element_size());
  }
  write_file_atomic(path, out);
}

std::map<std::string, torch::Tensor> load_safetensors(const std::string& path) {
  const std::string bytes = read_file(path);
  if (bytes.size() < 8) {
    safetensors_fail(path, "shorter than the 8-byte header length");
  }
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) {
    header_len |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  }
  if (header_len > kMaxHeaderLen || header_len > bytes.size() - 8) {
    safetensors_fail(path, "header length " + std::to_string(header_len) +
                               " does not fit in the file of " + std::to_string(bytes.size()) +
                               " bytes");
  }
  Json header;
  try {
    header = Json::parse(bytes.substr(8, header_len));
  } catch (const Json::exception&) {
    safetensors_fail(path, "header is not valid JSON");
  }
  if (!header.is_object()) {
    safetensors_fail(path, "header is not a JSON object");
  }
  const char* data = bytes.data() + 8 + header_len;
  const uint64_t data_len = bytes.size() - 8 - header_len;

  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, entry] : header.items()) {
    if (name == kMetadataKey) {
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets")) {
      safetensors_fail(path, where + "entry needs 'dtype', 'shape' and 'data_offsets'");
    }
    const Json& dtype = entry["dtype"];
    const SafetensorsType* type = nullptr;
    for (const auto& candidate : kSafetensorsTypes) {
      if (dtype.is_string() && dtype.get<std::string>() == candidate.name) {
        type = &candidate;
      }
    }
    if (type == nullptr) {
      safetensors_fail(path, where + "unsupported dtype " + dtype.dump() +
                                 " (accepted: F32, F64, F16, BF16, I64, I32, U8, BOOL)");
    }
    const Json& shape_json = entry["shape"];
    std::vector<int64_t> shape;
    bool shape_ok = shape_json.is_array();
    for (const auto& dim : shape_json) {
      shape_ok = shape_ok && dim.is_number_unsigned();
      shape.push_back(shape_ok ? dim.get<int64_t>() : 0);
    }
    if (!shape_ok) {
      safetensors_fail(
          path, where + "shape " + shape_json.dump() + " is not a list of non-negative integers");
    }
    const Json& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      safetensors_fail(path, where + "data_offsets " + offsets.dump() + " is not [begin, end]");
    }
    const uint64_t begin = offsets[0].get<uint64_t>();
    const uint64_t end = offsets[1].get<uint64_t>();
    if (begin > end || end > data_len) {
      safetensors_fail(path, where + "data_offsets " + offsets.dump() + " lie outside the " +
                                 std::to_string(data_len) + " bytes of data");
    }
    // Size the tensor from the header before allocating, so a corrupt shape cannot ask for
    // terabytes.
    const uint64_t itemsize = c10::elementSize(type->dtype);
    uint64_t nbytes = itemsize;
    for (const int64_t dim : shape) {
      nbytes = (dim == 0 || nbytes <= data_len / static_cast<uint64_t>(dim)) ? nbytes * dim
                                                                             : data_len + 1;
    }
    if (end - begin != nbytes) {
      safetensors_fail(path, where + "data_offsets " + offsets.dump() + " span " +
                                 std::to_string(end - begin) + " bytes but dtype and shape " +
                                 shape_json.dump() + " need " +
                                 (nbytes > data_len ? "more" : std::to_string(nbytes)));
    }
    torch::Tensor tensor = torch::empty(shape, torch::TensorOptions().dtype(type->dtype));
    if (nbytes > 0) {
      std::memcpy(tensor.data_ptr(), data + begin, nbytes);
    }
    out.emplace(name, std::move(tensor));
  }
  return out;
}

}  // namespace uotflow
