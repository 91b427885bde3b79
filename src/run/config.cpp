// Config resolution for runs: defaults of the run loop and of the method, the override chain,
// legacy key names, and the --resume rules.
#include "uotflow/run/config.h"

#include "uotflow/core/error.h"
#include "uotflow/data/dataset.h"
#include "uotflow/io/run_dir.h"
#include "uotflow/methods/method.h"
#include "uotflow/run/options.h"

namespace uotflow {
namespace {

// Keys of earlier versions and their names now ("" = dropped).
struct Rename {
  const char* from;
  const char* to;
};
constexpr Rename kRenames[] = {
    {"prior.std", "source.params.std"},
    {"parametrization.init.mean", "source.params.mean"},
    {"parametrization.init.std", "source.params.std"},
    {"eval.keep_checkpoints", "train.keep_last"},
    {"eval.n_saved", ""},
    {"flow.n_steps", "swjko.n_phases"},
    {"flow.inner_iterations", "swjko.iterations"},
    {"flow.lr_first", "swjko.init_lr"},
    {"flow.jko_step_size", "swjko.jko_step_size"},
    {"flow.batch_size", "swjko.batch_size"},
    {"flow.n_projections", "swjko.n_projections"},
    {"flow.optimizer", "swjko.optimizer"},
    {"flow.lr", "swjko.lr"},
    {"flow.momentum", "swjko.momentum"},
    {"parametrization.generator.latent_dim", "parametrization.generator.nz"},
};

// The parent object of a dotted key and the last part, or null when a parent is missing.
Json* parent_of(Json& config, const std::string& key, std::string& last) {
  Json* node = &config;
  size_t start = 0;
  for (auto dot = key.find('.'); dot != std::string::npos; dot = key.find('.', start)) {
    const auto part = key.substr(start, dot - start);
    if (!node->is_object() || !node->contains(part)) {
      return nullptr;
    }
    node = &(*node)[part];
    start = dot + 1;
  }
  last = key.substr(start);
  return node->is_object() ? node : nullptr;
}

void set_path(Json& config, const std::string& key, Json value) {
  Json* node = &config;
  size_t start = 0;
  for (auto dot = key.find('.'); dot != std::string::npos; dot = key.find('.', start)) {
    node = &(*node)[key.substr(start, dot - start)];
    start = dot + 1;
  }
  (*node)[key.substr(start)] = std::move(value);
}

// Drops objects left empty by the renames (e.g. "flow": {}).
void drop_empty(Json& config, const std::string& key) {
  for (auto dot = key.rfind('.'); dot != std::string::npos; dot = key.rfind('.', dot - 1)) {
    std::string last;
    const auto prefix = key.substr(0, dot);
    Json* parent = parent_of(config, prefix, last);
    if (parent == nullptr || !(*parent)[last].is_object() || !(*parent)[last].empty()) {
      return;
    }
    parent->erase(last);
    if (dot == 0) {
      return;
    }
  }
}

// "old.key=value" -> "new.key=value" for a renamed key.
std::string migrate_set(const std::string& assignment) {
  const auto eq = assignment.find('=');
  const auto key = assignment.substr(0, eq);
  for (const auto& r : kRenames) {
    if (key == r.from) {
      if (*r.to == '\0') {
        throw ConfigError("config key '" + key + "' is no longer used; leave it out");
      }
      return r.to + assignment.substr(eq);
    }
  }
  return assignment;
}

}  // namespace

std::vector<std::string> migrate_config(Json& config) {
  std::vector<std::string> done;
  if (!config.is_object()) {
    return done;
  }
  if (!config.contains("method") && (config.contains("functional") || config.contains("flow"))) {
    config["method"] = "swjko";
    done.push_back("(no method) -> method = swjko");
  }
  for (const auto& r : kRenames) {
    std::string last;
    Json* parent = parent_of(config, r.from, last);
    if (parent == nullptr || !parent->contains(last)) {
      continue;
    }
    Json value = (*parent)[last];
    parent->erase(last);
    if (*r.to != '\0') {
      std::string to_last;
      Json* target = parent_of(config, r.to, to_last);
      if (target != nullptr && target->contains(to_last) && (*target)[to_last] != value) {
        throw ConfigError("config keys '" + std::string(r.from) + "' (an earlier name) and '" +
                          r.to + "' are both set; keep '" + r.to + "'");
      }
      set_path(config, r.to, std::move(value));
    }
    drop_empty(config, r.from);
    done.push_back(std::string(r.from) + " -> " + (*r.to ? r.to : "(dropped)"));
  }
  return done;
}

Json default_config(const std::string& method) {
  const MethodEntry entry = method_registry().create(method);
  // The run's own sections are the defaults of their options structs, declared there once.
  Json defaults{{"method", method},
                {"seed", nullptr},
                {"device", RunOptions().device()},
                {"threads", RunOptions().threads()},
                {"source", default_source_section()}};
  defaults.update(ScheduleOptions().to_json());
  defaults.update(EvalOptions().to_json());
  if (entry.target_is_data) {
    defaults["data"] = default_data_section();
  }
  // A method adds its sections and may change the run's defaults (e.g. sjko: train.steps = 0).
  // update() with merge_objects keeps nulls, which merge_patch would read as deletions.
  defaults.update(entry.default_sections(), /*merge_objects=*/true);
  return defaults;
}

Json resolve_config(const Json& file_config, const std::vector<std::string>& sets,
                    const std::vector<std::pair<std::string, Json>>& flags,
                    const std::string& default_method) {
  Json file = file_config;
  migrate_config(file);
  std::vector<std::string> migrated_sets;
  for (const auto& s : sets) {
    migrated_sets.push_back(migrate_set(s));
  }
  // The method decides which sections exist, so find it first (file < --set).
  std::string method = default_method;
  if (file.is_object() && file.contains("method")) {
    if (!file["method"].is_string()) {
      throw ConfigError("config key 'method' must be a string");
    }
    method = file["method"].get<std::string>();
  }
  for (const auto& s : migrated_sets) {
    if (s.rfind("method=", 0) == 0) {
      method = s.substr(7);
    }
  }
  Json config = default_config(method);
  apply_overrides(config, file, migrated_sets, flags);
  resolve_seed(config);
  return config;
}

Json load_run_config(const std::string& run_dir) {
  return resolve_config(read_run_config(run_dir), {}, {});
}

Json resolve_run_request(const RunRequest& r) {
  if (r.resume_dir.empty()) {
    Json file = r.config_file.empty() ? Json() : read_json_file(r.config_file);
    return resolve_config(file, r.sets, r.flags, r.default_method);
  }
  const bool seeded = std::any_of(r.flags.begin(), r.flags.end(),
                                  [](const auto& flag) { return flag.first == "seed"; });
  if (!r.config_file.empty() || !r.sets.empty() || seeded || r.names_output) {
    throw ConfigError(
        "--resume continues a run in its own directory with its own config: --config, --set, "
        "--seed, --out and --name are not allowed");
  }
  Json config = load_run_config(r.resume_dir);
  for (const auto& [key, value] : r.flags) {
    try {
      apply_set(config, key + "=" + value.dump());
    } catch (const ConfigError& e) {
      // e.g. `flow --resume` (--steps sets swjko.n_phases) of a run of another method.
      const auto method = get<std::string>(config, "method");
      throw ConfigError("run '" + r.resume_dir + "' is a '" + method + "' run without key '" + key +
                        "' (" + e.what() + "); resume it with " +
                        (method == "swjko" ? "uotflow flow" : "uotflow train") + " --resume");
    }
  }
  return config;
}

}  // namespace uotflow
