// Configs: JSON with comments, merged over built-in defaults, with --set overrides and strict
// checking.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace uotflow {

using Json = nlohmann::json;

/// Deepest nesting of objects and arrays parse_json accepts.
constexpr int kMaxJsonDepth = 256;

/// Parses JSON text (comments allowed). Duplicate keys, syntax errors, nesting deeper than
/// kMaxJsonDepth and numbers beyond a double's range raise a one-line ConfigError naming `origin`
/// (and the key, where there is one).
Json parse_json(const std::string& text, const std::string& origin);

/// Reads and parses a JSON file; a missing file or bad JSON raises a ConfigError naming the path.
Json read_json_file(const std::string& path);

/// Merges `overrides` into `base`, key by key, recursively. Every key of `overrides` must exist in
/// `base` with a compatible type (an integer is accepted where a float is expected; a null default
/// accepts any value; an empty-object default accepts any keys). Errors name the full key path
/// (`train.lr_g`).
void merge_checked(Json& base, const Json& overrides, const std::string& path = "");

/// {"key": {"path": value}} for `key.path=value` (the value as apply_set reads it).
Json set_patch(const std::string& assignment);

/// Applies one `key.path=value` override. The value is parsed as JSON when it parses, else taken as
/// a string.
void apply_set(Json& config, const std::string& assignment);

/// The override chain shared by every command: merges `file_config` (null = none) into `config`
/// with merge_checked, then applies each --set assignment, then each dedicated flag (key -> value).
/// Sections whose default in `config` is an empty object (data.params) stay open through the whole
/// chain: a file that sets some of their keys does not stop --set from adding others.
void apply_overrides(Json& config, const Json& file_config, const std::vector<std::string>& sets,
                     const std::vector<std::pair<std::string, Json>>& flags);

/// Dotted paths of the keys whose values differ between two configs (changed, added or removed),
/// sorted: changed_keys({"a": {"b": 1}}, {"a": {"b": 2}}) == {"a.b"}. Arrays compare whole.
std::vector<std::string> changed_keys(const Json& before, const Json& after);

/// Typed access with a ConfigError naming the key when it is missing or of the wrong type.
/// `key` is a dotted path: get<double>(cfg, "train.lr_g").
const Json& at_path(const Json& config, const std::string& key);

[[noreturn]] void throw_type_error(const std::string& key, const Json& node);

template <typename T>
T get(const Json& config, const std::string& key) {
  const Json& node = at_path(config, key);
  try {
    return node.get<T>();
  } catch (const nlohmann::json::exception&) {
    throw_type_error(key, node);
  }
}

/// Every number with a fraction or an exponent in `config` (nested objects and lists too) is finite
/// and within what float32, the precision runs compute in, holds (|v| <= 3.4e38): otherwise a
/// ConfigError naming the key (train.lr_g = 1e300 fails here, not in an optimizer step).
void check_floats_fit_float32(const Json& config);

/// get() of a number that must be > 0 (a ConfigError naming the key and the value otherwise).
int64_t positive_int(const Json& config, const std::string& key);
double positive_number(const Json& config, const std::string& key);

}  // namespace uotflow
