// Strict JSON configs: comments allowed, duplicate keys rejected, typed merges over defaults.
#include "uotflow/core/config.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <vector>

#include "uotflow/core/error.h"

namespace uotflow {
namespace {

// JSON that does not parse (as opposed to parsing into something out of range or too deep).
class JsonSyntaxError : public ConfigError {
 public:
  using ConfigError::ConfigError;
};

std::string type_name(const Json& j) {
  if (j.is_number_integer()) {
    return "integer";
  }
  if (j.is_number_float()) {
    return "number";
  }
  return j.type_name();
}

bool compatible(const Json& def, const Json& value) {
  if (def.is_null()) {
    return true;
  }
  if (def.is_number_float()) {
    return value.is_number();
  }
  if (def.is_number_integer()) {
    return value.is_number_integer();
  }
  if (def.is_array()) {
    return value.is_array();
  }
  return def.type() == value.type();
}

}  // namespace

Json parse_json(const std::string& text, const std::string& origin) {
  // Per open container: the keys seen so far (objects) and the key being parsed, for errors.
  struct Open {
    bool object;
    std::vector<std::string> keys;
  };
  std::vector<Open> open;
  const auto where = [&]() {
    std::string path;
    for (const auto& level : open) {
      if (level.object && !level.keys.empty()) {
        path += (path.empty() ? "" : ".") + level.keys.back();
      }
    }
    return path.empty() ? std::string() : " at key '" + path + "'";
  };
  Json::parser_callback_t check = [&](int depth, Json::parse_event_t event, Json& parsed) {
    using E = Json::parse_event_t;
    if (event == E::object_start || event == E::array_start) {
      if (depth >= kMaxJsonDepth) {
        throw ConfigError(origin + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                          " levels" + where());
      }
      open.push_back(Open{event == E::object_start, {}});
    } else if (event == E::object_end || event == E::array_end) {
      open.pop_back();
    } else if (event == E::key) {
      const std::string key = parsed.get<std::string>();
      auto& keys = open.back().keys;
      if (std::find(keys.begin(), keys.end(), key) != keys.end()) {
        throw ConfigError(origin + ": duplicate key '" + key + "'");
      }
      keys.push_back(key);
    }
    return true;
  };
  try {
    return Json::parse(text, check, /*allow_exceptions=*/true, /*ignore_comments=*/true);
  } catch (const Json::exception& e) {
    // parse errors and number overflow (out_of_range 406): one line naming the file and key.
    std::string what = e.what();
    if (auto pos = what.find("] "); pos != std::string::npos) {
      what = what.substr(pos + 2);
    }
    if (e.id == 406) {
      throw ConfigError(origin + ": " + what + where() + " (beyond the range of a double)");
    }
    throw JsonSyntaxError(origin + ": invalid JSON: " + what);
  }
}

Json read_json_file(const std::string& path) {
  // A device or a FIFO (/dev/zero, a pipe) could be read forever: configs are regular files of a
  // bounded size.
  constexpr std::uintmax_t kMaxBytes = 64u << 20;
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!ec && std::filesystem::exists(status) && !std::filesystem::is_regular_file(status)) {
    throw ConfigError("config file '" + path + "' is not a regular file");
  }
  if (!ec && std::filesystem::is_regular_file(status) &&
      std::filesystem::file_size(path, ec) > kMaxBytes) {
    throw ConfigError("config file '" + path + "' is larger than 64 MiB");
  }
  std::ifstream in(path);
  if (!in) {
    throw ConfigError("cannot read config file '" + path + "'");
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_json(buffer.str(), path);
}

namespace {

// Paths whose default is an empty object: free-form sections (data.params, functional.params)
// whose contents their consumer checks. Keys below them may be added at any override level.
using OpenPaths = std::set<std::string>;

void collect_open(const Json& j, const std::string& path, OpenPaths& open) {
  if (!j.is_object()) {
    return;
  }
  if (j.empty()) {
    open.insert(path);
  }
  for (const auto& [key, value] : j.items()) {
    collect_open(value, path.empty() ? key : path + "." + key, open);
  }
}

bool is_open(const OpenPaths& open, const std::string& path) {
  for (const auto& p : open) {
    if (path == p || path.rfind(p + ".", 0) == 0) {
      return true;
    }
  }
  return false;
}

void merge_impl(Json& base, const Json& overrides, const std::string& path,
                const OpenPaths& open_paths) {
  if (!overrides.is_object()) {
    throw ConfigError("config " + (path.empty() ? std::string("root") : "'" + path + "'") +
                      " must be a JSON object, got " + type_name(overrides));
  }
  const bool open = (base.is_object() && base.empty()) || is_open(open_paths, path);
  for (const auto& [key, value] : overrides.items()) {
    const std::string full = path.empty() ? key : path + "." + key;
    if (!base.contains(key)) {
      if (open) {
        base[key] = value;
        continue;
      }
      std::string known;
      for (const auto& [k, v] : base.items()) {
        known += (known.empty() ? "" : ", ") + k;
      }
      throw ConfigError("unknown config key '" + full + "' (known at this level: " + known + ")");
    }
    Json& slot = base[key];
    if (slot.is_object() && !slot.empty() && value.is_object()) {
      merge_impl(slot, value, full, open_paths);
    } else if (open) {
      slot = value;
    } else if (slot.is_object() && !slot.empty()) {
      merge_impl(slot, value, full, open_paths);  // raises the type error
    } else if (!compatible(slot, value)) {
      throw ConfigError("config key '" + full + "' expects " + type_name(slot) + ", got " +
                        type_name(value) + " (" + value.dump() + ")");
    } else if (slot.is_number_float() && value.is_number()) {
      slot = value.get<double>();
    } else {
      slot = value;
    }
  }
}

}  // namespace

// {"a": {"b": value}} for "a.b=value" (the value parsed as JSON when it parses).
Json set_patch(const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError("--set expects key.path=value, got '" + assignment + "'");
  }
  const std::string key = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  // Text that is not JSON is a string; JSON is parsed with the file's checks (depth, range).
  Json patch;
  try {
    patch = parse_json(text, "--set " + key);
  } catch (const JsonSyntaxError&) {
    patch = text;
  }
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const auto dot = key.find('.', start);
    parts.push_back(key.substr(start, dot - start));
    if (dot == std::string::npos) {
      break;
    }
    start = dot + 1;
  }
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (it->empty()) {
      throw ConfigError("--set has an empty key segment in '" + key + "'");
    }
    patch = Json{{*it, patch}};
  }
  return patch;
}

void merge_checked(Json& base, const Json& overrides, const std::string& path) {
  merge_impl(base, overrides, path, {});
}

void apply_set(Json& config, const std::string& assignment) {
  merge_checked(config, set_patch(assignment));
}

std::vector<std::string> changed_keys(const Json& before, const Json& after) {
  std::vector<std::string> out;
  std::function<void(const Json&, const Json&, const std::string&)> walk =
      [&](const Json& a, const Json& b, const std::string& path) {
        if (!a.is_object() || !b.is_object()) {
          if (a != b) {
            out.push_back(path.empty() ? "(whole config)" : path);
          }
          return;
        }
        std::set<std::string> keys;
        for (const auto& [k, v] : a.items()) {
          keys.insert(k);
        }
        for (const auto& [k, v] : b.items()) {
          keys.insert(k);
        }
        for (const auto& k : keys) {
          const auto sub = path.empty() ? k : path + "." + k;
          if (!a.contains(k) || !b.contains(k)) {
            out.push_back(sub);
          } else {
            walk(a[k], b[k], sub);
          }
        }
      };
  walk(before, after, "");
  std::sort(out.begin(), out.end());
  return out;
}

const Json& at_path(const Json& config, const std::string& key) {
  const Json* node = &config;
  size_t start = 0;
  while (true) {
    const auto dot = key.find('.', start);
    const std::string part = key.substr(start, dot - start);
    if (!node->is_object() || !node->contains(part)) {
      throw ConfigError("missing config key '" + key + "'");
    }
    node = &(*node)[part];
    if (dot == std::string::npos) {
      return *node;
    }
    start = dot + 1;
  }
}

void throw_type_error(const std::string& key, const Json& node) {
  throw ConfigError("config key '" + key + "' has the wrong type: " + type_name(node) + " (" +
                    node.dump() + ")");
}

void apply_overrides(Json& config, const Json& file_config, const std::vector<std::string>& sets,
                     const std::vector<std::pair<std::string, Json>>& flags) {
  OpenPaths open;
  collect_open(config, "", open);
  if (!file_config.is_null()) {
    merge_impl(config, file_config, "", open);
  }
  for (const auto& s : sets) {
    merge_impl(config, set_patch(s), "", open);
  }
  for (const auto& [key, value] : flags) {
    merge_impl(config, set_patch(key + "=" + value.dump()), "", open);
  }
}

namespace {

void check_floats_impl(const Json& node, const std::string& key) {
  if (node.is_number_float()) {
    const double v = node.get<double>();
    if (!(std::abs(v) <= std::numeric_limits<float>::max())) {
      std::ostringstream msg;
      msg << "config key '" << key << "' is " << v
          << ", beyond what float32 (the precision of training) holds: |v| <= "
          << std::numeric_limits<float>::max();
      throw ConfigError(msg.str());
    }
  } else if (node.is_object()) {
    for (const auto& [name, child] : node.items()) {
      check_floats_impl(child, key.empty() ? name : key + "." + name);
    }
  } else if (node.is_array()) {
    for (size_t i = 0; i < node.size(); ++i) {
      check_floats_impl(node[i], key + "[" + std::to_string(i) + "]");
    }
  }
}

}  // namespace

void check_floats_fit_float32(const Json& config) {
  check_floats_impl(config, "");
}

int64_t positive_int(const Json& config, const std::string& key) {
  const auto v = get<int64_t>(config, key);
  if (v <= 0) {
    throw ConfigError("config key '" + key + "' must be > 0, got " + std::to_string(v));
  }
  return v;
}

double positive_number(const Json& config, const std::string& key) {
  const auto v = get<double>(config, key);
  if (!(v > 0)) {
    throw ConfigError("config key '" + key + "' must be > 0, got " + std::to_string(v));
  }
  return v;
}

}  // namespace uotflow
