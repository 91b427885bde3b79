// Nested state in LibTorch archives: a module's or optimiser's state under a key of a checkpoint.
#pragma once

#include <torch/serialize/archive.h>

#include <string>

namespace uotflow {

/// Writes `saveable` (a module or optimiser) as a sub-archive under `key`.
///
///   write_state(archive, "generator", *generator);
///   read_state(archive, "generator", *generator);
template <typename T>
void write_state(torch::serialize::OutputArchive& archive, const std::string& key, T& saveable) {
  torch::serialize::OutputArchive sub;
  saveable.save(sub);
  archive.write(key, sub);
}

/// Loads `loadable` from the sub-archive under `key` (missing: c10::Error).
template <typename T>
void read_state(torch::serialize::InputArchive& archive, const std::string& key, T& loadable) {
  torch::serialize::InputArchive sub;
  archive.read(key, sub);
  loadable.load(sub);
}

/// The same when `key` may be absent; returns whether it was there.
template <typename T>
bool try_read_state(torch::serialize::InputArchive& archive, const std::string& key, T& loadable) {
  torch::serialize::InputArchive sub;
  if (!archive.try_read(key, sub)) {
    return false;
  }
  loadable.load(sub);
  return true;
}

/// The bytes of an archive (what save_to writes to a file), and an archive read back from them:
/// archives sent between processes or wrapped in a checkpoint's payload.
std::string archive_bytes(torch::serialize::OutputArchive& archive);
void load_archive_bytes(torch::serialize::InputArchive& archive, const std::string& bytes);

}  // namespace uotflow
