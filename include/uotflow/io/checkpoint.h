// Checkpoint files that verify themselves: a manifest (step, method, the run's config and its
// digest, format version, SHA-256 of the payload) checked before anything is loaded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "uotflow/core/config.h"
#include "uotflow/core/error.h"

namespace uotflow {

/// Version of the checkpoint layout written by encode_checkpoint.
constexpr int64_t kCheckpointFormat = 1;

/// A checkpoint that fails verification: the message names the file and what failed.
class CheckpointError : public ConfigError {
 public:
  using ConfigError::ConfigError;
};

/// What a checkpoint says of itself.
struct CheckpointManifest {
  int64_t format = kCheckpointFormat;
  int64_t step = 0;
  std::string method;
  Json config;                ///< the run's config.json (without "meta") when it was written
  std::string config_sha256;  ///< config_digest(config)
  std::string payload_sha256;
  int64_t payload_bytes = 0;
};

/// A verified checkpoint: its manifest and the payload (a LibTorch archive) it vouches for.
struct Checkpoint {
  CheckpointManifest manifest;
  std::string payload;
};

/// SHA-256 of a config's canonical text (keys sorted, no spaces).
std::string config_digest(const Json& config);

/// The bytes of a checkpoint file: a magic line, the manifest as one JSON line, that line's
/// SHA-256, then the payload.
///
///   write_file_atomic(path, encode_checkpoint(step, "uotm", config, archive_bytes));
std::string encode_checkpoint(int64_t step, const std::string& method, const Json& config,
                              const std::string& payload);

/// Reads `path` and verifies the magic line, the manifest's digest, the payload's size and
/// SHA-256, and (for files named step-N.ckpt) that the manifest's step is N. Any failure is a
/// CheckpointError naming the file and the check that failed; nothing of a failed file is returned.
Checkpoint read_checkpoint(const std::string& path);

/// The manifest of `path`, verified against its own SHA-256 (the payload is neither read nor
/// checked): what a checkpoint says of itself, cheaply. A CheckpointError as read_checkpoint's.
CheckpointManifest read_checkpoint_manifest(const std::string& path);

/// The step number in a checkpoint file name (step-00001000.ckpt -> 1000), or -1.
int64_t checkpoint_step_from_name(const std::string& path);

}  // namespace uotflow
