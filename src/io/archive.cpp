// LibTorch archives as bytes in memory.
#include "uotflow/io/archive.h"

#include <torch/serialize.h>

namespace uotflow {

std::string archive_bytes(torch::serialize::OutputArchive& archive) {
  std::string bytes;
  archive.save_to([&](const void* data, size_t n) {
    bytes.append(static_cast<const char*>(data), n);
    return n;
  });
  return bytes;
}

void load_archive_bytes(torch::serialize::InputArchive& archive, const std::string& bytes) {
  archive.load_from(bytes.data(), bytes.size());
}

}  // namespace uotflow
