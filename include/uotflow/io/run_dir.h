// Run directories: auto-numbered folders that are never reused,
// config.json with provenance, append-mode logs, step-numbered checkpoints and RNG states.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/serialize/archive.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "uotflow/core/config.h"

namespace uotflow {

/// `value` left-padded with zeros to `width` digits: zero_pad(7, 4) == "0007".
std::string zero_pad(int64_t value, int width);

/// The current UTC time as 2026-01-31T12:00:00Z.
std::string iso_time();

/// Creates out_root/NNNNN-name with the next free number and returns its path. mkdir fails on an
/// existing folder, so two runs never share one.
std::string create_run_dir(const std::string& out_root, const std::string& name);

/// Writes RUN_DIR/config.json atomically: `config` plus a "meta" section: the versions, the time
/// and the fields of `meta` (device, command line, ...).
void write_run_config(const std::string& run_dir, const Json& config, const Json& meta);

/// RUN_DIR/config.json as written by write_run_config, without its "meta" section; a folder
/// without one is a ConfigError ("not a run directory").
Json read_run_config(const std::string& run_dir);
/// The "meta" section of RUN_DIR/config.json ({} when there is none).
Json read_run_meta(const std::string& run_dir);

/// Replaces a null "seed" by a fresh random one and checks it is a non-negative integer.
void resolve_seed(Json& config);

/// The checkpoints RUN_DIR/checkpoints/step-N.ckpt, oldest first (zero-padded names sort by step).
std::vector<std::filesystem::path> list_checkpoints(const std::string& run_dir);

/// Whether RUN_DIR/checkpoints holds step-N.pt files of earlier versions (no manifest).
bool has_legacy_checkpoints(const std::string& run_dir);

/// Removes all but the newest `keep` checkpoints (keep <= 0 keeps all).
void prune_checkpoints(const std::string& run_dir, int64_t keep);

/// A random generator's state into / out of an archive under `key`.
void save_generator_state(torch::serialize::OutputArchive& archive, const std::string& key,
                          at::Generator& gen);
void load_generator_state(torch::serialize::InputArchive& archive, const std::string& key,
                          at::Generator& gen);

/// A vector [D] or matrix [R, C] as JSON numbers (a list, or a list of rows), for target.json.
Json tensor_to_json(const torch::Tensor& t);

/// Appends "TIME message" to RUN_DIR/log.txt.
void log_line(const std::string& run_dir, const std::string& message);

}  // namespace uotflow
