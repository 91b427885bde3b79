// Name -> factory registries for every swappable part (phi, costs, data sets, nets, metrics,
// methods).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "uotflow/core/error.h"

namespace uotflow {

/// A registry of factories keyed by the names used in configs. An unknown name raises a ConfigError
/// that lists the known ones. An entry may declare the config keys its factory reads, with their
/// defaults (taken from its options struct), so that config resolution can fill them in.
///
///   Registry<Foo(int)> r("foo");
///   r.add("bar", "a bar", [](int x) { return Foo(x); }, BarOptions().to_json());
///   Foo f = r.create("bar", 3);
template <typename Signature>
class Registry;

template <typename R, typename... Args>
class Registry<R(Args...)> {
 public:
  using Factory = std::function<R(Args...)>;
  struct Entry {
    std::string description;
    Factory factory;
    nlohmann::json defaults;  ///< the keys the factory reads and their defaults (an object)
  };

  explicit Registry(std::string kind) : kind_(std::move(kind)) {}

  void add(const std::string& name, const std::string& description, Factory factory,
           nlohmann::json defaults = nlohmann::json::object()) {
    entries_[name] = Entry{description, std::move(factory), std::move(defaults)};
  }

  bool contains(const std::string& name) const {
    return entries_.count(name) > 0;
  }

  const Entry& at(const std::string& name) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      throw ConfigError("unknown " + kind_ + " '" + name + "' (known: " + known() + ")");
    }
    return it->second;
  }

  R create(const std::string& name, Args... args) const {
    return at(name).factory(std::forward<Args>(args)...);
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, entry] : entries_) {
      out.push_back(name);
    }
    return out;
  }

  std::string known() const {
    std::string out;
    for (const auto& [name, entry] : entries_) {
      out += (out.empty() ? "" : ", ") + name;
    }
    return out;
  }

  const std::string& kind() const {
    return kind_;
  }
  const std::map<std::string, Entry>& entries() const {
    return entries_;
  }

 private:
  std::string kind_;
  std::map<std::string, Entry> entries_;
};

}  // namespace uotflow
