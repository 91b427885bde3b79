// Run-directory helpers shared by the trainer and the flow runner.
#include "uotflow/io/run_dir.h"

#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <mutex>
#include <regex>
#include <sstream>

#include "uotflow/core/error.h"
#include "uotflow/core/rng.h"
#include "uotflow/io/files.h"
#include "uotflow_build_info.h"

namespace fs = std::filesystem;

namespace uotflow {

std::string zero_pad(int64_t value, int width) {
  std::ostringstream s;
  s << std::setw(width) << std::setfill('0') << value;
  return s.str();
}

std::string iso_time() {
  auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::ostringstream s;
  s << std::put_time(std::gmtime(&now), "%Y-%m-%dT%H:%M:%SZ");
  return s.str();
}

std::string create_run_dir(const std::string& out_root, const std::string& name) {
  if (name.find('/') != std::string::npos || name.find('\0') != std::string::npos) {
    throw ConfigError("run name '" + name +
                      "' may not contain '/': it names one folder under the output folder '" +
                      out_root + "'");
  }
  std::error_code ec;
  fs::create_directories(out_root, ec);
  if (ec) {
    throw ConfigError("cannot create output folder '" + out_root + "': " + ec.message());
  }
  int64_t next = 0;
  for (const auto& entry : fs::directory_iterator(out_root)) {
    const std::string base = entry.path().filename().string();
    size_t digits = 0;
    while (digits < base.size() && std::isdigit(static_cast<unsigned char>(base[digits]))) {
      ++digits;
    }
    if (digits > 0 && digits < 19) {
      next = std::max<int64_t>(next, std::stoll(base.substr(0, digits)) + 1);
    }
  }
  for (int attempt = 0; attempt < 1000; ++attempt, ++next) {
    const fs::path dir = fs::path(out_root) / (zero_pad(next, 5) + "-" + name);
    if (fs::create_directory(dir, ec)) {
      return dir.string();
    }
    if (ec && ec != std::errc::file_exists) {
      throw ConfigError("cannot create run directory '" + dir.string() + "': " + ec.message());
    }
  }
  throw RuntimeError("cannot create a run directory under '" + out_root + "'");
}

void write_run_config(const std::string& run_dir, const Json& config, const Json& meta) {
  Json out = config;
  out["meta"] = Json{{"uotflow_version", UOTFLOW_VERSION},
                     {"libtorch_version", TORCH_VERSION},
                     {"created", iso_time()}};
  out["meta"].update(meta);
  write_file_atomic((fs::path(run_dir) / "config.json").string(), out.dump(2) + "\n");
}

Json read_run_config(const std::string& run_dir) {
  const auto path = (fs::path(run_dir) / "config.json").string();
  if (!fs::exists(path)) {
    throw ConfigError("'" + run_dir + "' is not a run directory (no config.json)");
  }
  Json stored = read_json_file(path);
  stored.erase("meta");
  return stored;
}

Json read_run_meta(const std::string& run_dir) {
  const auto path = (fs::path(run_dir) / "config.json").string();
  if (!fs::exists(path)) {
    throw ConfigError("'" + run_dir + "' is not a run directory (no config.json)");
  }
  Json stored = read_json_file(path);
  return stored.contains("meta") && stored["meta"].is_object() ? stored["meta"] : Json::object();
}

void resolve_seed(Json& config) {
  if (config["seed"].is_null()) {
    config["seed"] = random_seed();
  }
  const bool valid = config["seed"].is_number_unsigned() ||
                     (config["seed"].is_number_integer() && config["seed"].get<int64_t>() >= 0);
  if (!valid) {
    throw ConfigError("config key 'seed' must be a non-negative integer");
  }
}

std::vector<fs::path> list_checkpoints(const std::string& run_dir) {
  static const std::regex kName(R"(step-\d+\.ckpt)");
  std::vector<fs::path> found;
  const auto dir = fs::path(run_dir) / "checkpoints";
  if (fs::is_directory(dir)) {
    for (const auto& e : fs::directory_iterator(dir)) {
      if (std::regex_match(e.path().filename().string(), kName)) {
        found.push_back(e.path());
      }
    }
  }
  std::sort(found.begin(), found.end());
  return found;
}

bool has_legacy_checkpoints(const std::string& run_dir) {
  static const std::regex kName(R"(step-\d+\.pt)");
  const auto dir = fs::path(run_dir) / "checkpoints";
  if (fs::is_directory(dir)) {
    for (const auto& e : fs::directory_iterator(dir)) {
      if (std::regex_match(e.path().filename().string(), kName)) {
        return true;
      }
    }
  }
  return false;
}

void prune_checkpoints(const std::string& run_dir, int64_t keep) {
  if (keep <= 0) {
    return;
  }
  const auto found = list_checkpoints(run_dir);
  for (size_t i = 0; i + keep < found.size(); ++i) {
    fs::remove(found[i]);
  }
}

void save_generator_state(torch::serialize::OutputArchive& archive, const std::string& key,
                          at::Generator& gen) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  archive.write(key, gen.get_state());
}

void load_generator_state(torch::serialize::InputArchive& archive, const std::string& key,
                          at::Generator& gen) {
  torch::Tensor state;
  archive.read(key, state);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

Json tensor_to_json(const torch::Tensor& t) {
  auto c = t.to(torch::kDouble).contiguous();
  if (c.dim() == 1) {
    return Json(std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel()));
  }
  Json rows = Json::array();
  for (int64_t i = 0; i < c.size(0); ++i) {
    rows.push_back(tensor_to_json(c[i]));
  }
  return rows;
}

void log_line(const std::string& run_dir, const std::string& message) {
  append_line((fs::path(run_dir) / "log.txt").string(), iso_time() + " " + message);
}

}  // namespace uotflow
