// Reading a net's config section: a key, or the options struct's default when the section lacks it.
#pragma once

#include <string>

#include "uotflow/core/config.h"

namespace uotflow {

/// `section[key]`, or `fallback` when the section lacks it (a wrong type still names the key).
template <typename T>
T read_or(const Json& section, const std::string& key, T fallback) {
  return section.is_object() && section.contains(key) ? get<T>(section, key) : fallback;
}

}  // namespace uotflow
