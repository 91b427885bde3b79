// Config resolution for runs: defaults of the run loop and of the method, the override chain,
// legacy key names, and the --resume rules.
#include "uotflow/run/config.h"

#include "run_keeper.h"

#include "uotflow/core/error.h"
#include "uotflow/data/dataset.h"
#include "uotflow/io/run_dir.h"
#include "uotflow/methods/method.h"
#include "uotflow/nets/nets.h"
#include "uotflow/run/options.h"

namespace uotflow {
namespace {

// Keys of earlier versions of the run's own sections and their names now ("" = dropped).
const std::vector<std::pair<std::string, std::string>> kRunRenames = {
    {"prior.std", "source.params.std"},
    {"parametrization.init.mean", "source.params.mean"},
    {"parametrization.init.std", "source.params.std"},
    {"eval.keep_checkpoints", "train.keep_last"},
    {"eval.n_saved", ""},
};

// The sections that hold a network, and the role it plays.
const std::vector<std::pair<std::string, NetRole>> kNetSections = {
    {"generator", NetRole::generator}, {"potential", NetRole::potential}};

// The run's renames, then every method's.
std::vector<std::pair<std::string, std::string>> all_renames() {
  auto renames = kRunRenames;
  for (const auto& name : method_registry().names()) {
    const auto entry = method_registry().create(name);
    renames.insert(renames.end(), entry.renamed_keys.begin(), entry.renamed_keys.end());
  }
  return renames;
}

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
  for (const auto& [from, to] : all_renames()) {
    if (key == from) {
      if (to.empty()) {
        throw ConfigError("config key '" + key + "' is no longer used; leave it out");
      }
      return to + assignment.substr(eq);
    }
  }
  return assignment;
}

// The flags with the keys they set for `method`: kJkoStepsFlag becomes the method's own key of
// its JKO steps. run_dir names the run a resume continues ("" for a new run).
std::vector<std::pair<std::string, Json>> method_flags(
    const std::vector<std::pair<std::string, Json>>& flags, const std::string& method,
    const std::string& run_dir) {
  auto out = flags;
  for (auto& [key, value] : out) {
    if (key != kJkoStepsFlag) {
      continue;
    }
    key = method_registry().create(method).jko_steps_key;
    if (key.empty()) {
      throw ConfigError((run_dir.empty()
                             ? "method '" + method + "'"
                             : "run '" + run_dir + "' is a '" + method + "' run, which") +
                        " has no JKO steps to set (its length is train.steps)" +
                        (run_dir.empty() ? "" : "; resume it with uotflow train --resume"));
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> migrate_config(Json& config) {
  std::vector<std::string> done;
  if (!config.is_object()) {
    return done;
  }
  if (!config.contains("method")) {
    for (const auto& name : method_registry().names()) {
      const auto sections = method_registry().create(name).implied_by_sections;
      if (std::any_of(sections.begin(), sections.end(),
                      [&config](const std::string& s) { return config.contains(s); })) {
        config["method"] = name;
        done.push_back("(no method) -> method = " + name);
        break;
      }
    }
  }
  for (const auto& [from, to] : all_renames()) {
    std::string last;
    Json* parent = parent_of(config, from, last);
    if (parent == nullptr || !parent->contains(last)) {
      continue;
    }
    Json value = (*parent)[last];
    parent->erase(last);
    if (!to.empty()) {
      std::string to_last;
      Json* target = parent_of(config, to, to_last);
      if (target != nullptr && target->contains(to_last) && (*target)[to_last] != value) {
        throw ConfigError("config keys '" + from + "' (an earlier name) and '" + to +
                          "' are both set; keep '" + to + "'");
      }
      set_path(config, to, std::move(value));
    }
    drop_empty(config, from);
    done.push_back(from + " -> " + (to.empty() ? "(dropped)" : to));
  }
  for (const auto& [name, role] : kNetSections) {
    if (config.contains(name)) {
      for (const auto& key : drop_keys_of_other_nets(config[name], role)) {
        done.push_back(name + "." + key + " (a key of another net) -> (dropped)");
      }
    }
  }
  return done;
}

namespace {

// A net section's defaults are those of the net the file and the --set overrides pick (file <
// --set), so a section names only keys its net reads.
void select_nets(Json& config, const Json& file, const std::vector<std::string>& sets) {
  std::vector<Json> patches = {file};  // in the order they apply
  for (const auto& s : sets) {
    patches.push_back(set_patch(s));
  }
  for (const auto& [name, role] : kNetSections) {
    if (!config.contains(name) || !config[name].is_object() || !config[name].contains("net")) {
      continue;
    }
    std::string net = config[name]["net"].get<std::string>();
    for (const auto& patch : patches) {
      if (patch.is_object() && patch.contains(name) && patch[name].is_object() &&
          patch[name].contains("net") && patch[name]["net"].is_string()) {
        net = patch[name]["net"].get<std::string>();
      }
    }
    config[name] = default_net_section(role, net);
  }
}

}  // namespace

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
  // A method adds its sections and may change the run's defaults (a phased one: train.steps 0).
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
  select_nets(config, file, migrated_sets);
  apply_overrides(config, file, migrated_sets, method_flags(flags, method, ""));
  check_floats_fit_float32(config);
  resolve_seed(config);
  return config;
}

Json load_run_config(const std::string& run_dir) {
  return resolve_config(read_run_config(run_dir), {}, {});
}

Json resolve_run_request(const RunRequest& r) {
  if (r.resume_dir.empty()) {
    Json file = r.config_file.empty() ? Json() : read_json_file(r.config_file);
    if (!r.config_file.empty() && !file.is_object()) {
      // `null` would otherwise mean "no file" and train on the defaults.
      throw ConfigError("config file '" + r.config_file + "' must hold a JSON object, got " +
                        std::string(file.type_name()));
    }
    return resolve_config(file, r.sets, r.flags, r.default_method);
  }
  const bool seeded = std::any_of(r.flags.begin(), r.flags.end(),
                                  [](const auto& flag) { return flag.first == "seed"; });
  if (!r.config_file.empty() || !r.sets.empty() || seeded || r.names_output) {
    throw ConfigError(
        "--resume continues a run in its own directory with its own config: --config, --set, "
        "--seed, --out and --name are not allowed");
  }
  run_detail::check_config_unedited(r.resume_dir);
  Json config = load_run_config(r.resume_dir);
  const auto method = get<std::string>(config, "method");
  for (const auto& [key, value] : method_flags(r.flags, method, r.resume_dir)) {
    apply_set(config, key + "=" + value.dump());
  }
  return config;
}

}  // namespace uotflow
