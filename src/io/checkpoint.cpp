// Self-verifying checkpoint files.
#include "uotflow/io/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>

#include "uotflow/io/files.h"
#include "uotflow/io/sha256.h"

namespace fs = std::filesystem;

namespace uotflow {
namespace {

constexpr const char* kCheckpointMagic = "uotflow-checkpoint";

// The next '\n'-terminated line of `bytes` from `pos` (pos moves past it), or false.
bool next_line(const std::string& bytes, size_t& pos, std::string& line, size_t max_length) {
  const auto end = bytes.find('\n', pos);
  if (end == std::string::npos || end - pos > max_length) {
    return false;
  }
  line = bytes.substr(pos, end - pos);
  pos = end + 1;
  return true;
}

}  // namespace

std::string config_digest(const Json& config) {
  return sha256_hex(config.dump());
}

std::string encode_checkpoint(int64_t step, const std::string& method, const Json& config,
                              const std::string& payload) {
  const Json manifest{{"format", kCheckpointFormat},
                      {"step", step},
                      {"method", method},
                      {"config", config},
                      {"config_sha256", config_digest(config)},
                      {"payload_sha256", sha256_hex(payload)},
                      {"payload_bytes", static_cast<int64_t>(payload.size())}};
  const std::string line = manifest.dump();
  return std::string(kCheckpointMagic) + " " + std::to_string(kCheckpointFormat) + "\n" + line +
         "\n" + sha256_hex(line) + "\n" + payload;
}

int64_t checkpoint_step_from_name(const std::string& path) {
  static const std::regex kName(R"(step-(\d{1,18})\.ckpt)");
  std::smatch m;
  const auto name = fs::path(path).filename().string();
  return std::regex_match(name, m, kName) ? std::stoll(m[1].str()) : -1;
}

namespace {

// The magic line, the manifest and its SHA-256 at the start of `bytes`, verified (pos moves past
// them); `fail` throws.
template <typename Fail>
CheckpointManifest parse_head(const std::string& bytes, size_t& pos, const Fail& fail) {
  std::string magic, line, digest;
  if (!next_line(bytes, pos, magic, 64) ||
      magic.rfind(std::string(kCheckpointMagic) + " ", 0) != 0) {
    fail(bytes.rfind("PK", 0) == 0
             ? "it has no manifest (written by an earlier uotflow, or not a uotflow checkpoint)"
             : "not a uotflow checkpoint (bad first line)");
  }
  if (magic != std::string(kCheckpointMagic) + " " + std::to_string(kCheckpointFormat)) {
    fail("unsupported format '" + magic.substr(std::string(kCheckpointMagic).size() + 1) +
         "' (this build " + "reads format " + std::to_string(kCheckpointFormat) + ")");
  }
  if (!next_line(bytes, pos, line, bytes.size()) || !next_line(bytes, pos, digest, 64)) {
    fail("truncated manifest");
  }
  if (sha256_hex(line) != digest) {
    fail("the manifest does not match its SHA-256");
  }
  CheckpointManifest man;
  try {
    const Json m = Json::parse(line);
    man.format = m.at("format").get<int64_t>();
    man.step = m.at("step").get<int64_t>();
    man.method = m.at("method").get<std::string>();
    man.config = m.at("config");
    man.config_sha256 = m.at("config_sha256").get<std::string>();
    man.payload_sha256 = m.at("payload_sha256").get<std::string>();
    man.payload_bytes = m.at("payload_bytes").get<int64_t>();
  } catch (const Json::exception& e) {
    fail(std::string("unreadable manifest (") + e.what() + ")");
  }
  if (man.format != kCheckpointFormat) {
    fail("the manifest's format is " + std::to_string(man.format));
  }
  if (config_digest(man.config) != man.config_sha256) {
    fail("the manifest's config does not match its digest");
  }
  return man;
}

[[noreturn]] void checkpoint_fail(const std::string& path, const std::string& why) {
  throw CheckpointError("checkpoint '" + path + "' failed verification: " + why);
}

}  // namespace

CheckpointManifest read_checkpoint_manifest(const std::string& path) {
  const auto fail = [&](const std::string& why) { checkpoint_fail(path, why); };
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    fail("cannot read the file");
  }
  // The three lines of the head, not the payload: read in growing chunks until the third newline
  // (a manifest holds a config, at most 64 MiB).
  constexpr size_t kMaxHead = (64u << 20) + 4096;
  std::string head;
  size_t newlines = 0;
  for (size_t chunk = 1 << 16; newlines < 3 && head.size() < kMaxHead && in; chunk *= 2) {
    const size_t before = head.size();
    head.resize(before + chunk);
    in.read(head.data() + before, static_cast<std::streamsize>(chunk));
    head.resize(before + static_cast<size_t>(in.gcount()));
    newlines += std::count(head.begin() + static_cast<std::ptrdiff_t>(before), head.end(), '\n');
  }
  size_t pos = 0;
  return parse_head(head, pos, fail);
}

Checkpoint read_checkpoint(const std::string& path) {
  const auto fail = [&](const std::string& why) { checkpoint_fail(path, why); };
  std::string bytes;
  try {
    bytes = read_file(path);
  } catch (const ConfigError&) {
    fail("cannot read the file");
  }
  size_t pos = 0;
  Checkpoint out;
  out.manifest = parse_head(bytes, pos, fail);
  const auto& man = out.manifest;
  const auto size = static_cast<int64_t>(bytes.size() - pos);
  if (size != man.payload_bytes) {
    fail("payload is " + std::to_string(size) + " bytes, the manifest says " +
         std::to_string(man.payload_bytes) + " (truncated or padded)");
  }
  out.payload = bytes.substr(pos);
  if (sha256_hex(out.payload) != man.payload_sha256) {
    fail("the payload's SHA-256 differs from the manifest's (corrupt data)");
  }
  const int64_t named = checkpoint_step_from_name(path);
  if (named >= 0 && named != man.step) {
    fail("the file is named for step " + std::to_string(named) + " but holds step " +
         std::to_string(man.step) + " (a checkpoint copied under another name)");
  }
  return out;
}

}  // namespace uotflow
