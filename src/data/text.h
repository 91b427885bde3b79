// Private text helpers of the file readers (CSV points, ARFF and CSV tables).
#pragma once

#include <charconv>
#include <optional>
#include <string>

namespace uotflow {

/// `s` without leading and trailing blanks (space, tab, CR, LF).
inline std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) {
    return "";
  }
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

/// The number `text` spells (an optional leading '+' allowed), or nullopt. from_chars rather than
/// strtod: it ignores the C locale, so "1.5" parses the same everywhere.
inline std::optional<double> parse_number(const std::string& text) {
  const size_t skip = !text.empty() && text[0] == '+' ? 1 : 0;
  double value = 0.0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data() + skip, end, value);
  if (text.size() == skip || ec != std::errc() || ptr != end) {
    return std::nullopt;
  }
  return value;
}

/// True when `text` spells a number outside the range of a double (1e999, -1e999, 1e-999).
inline bool out_of_double_range(const std::string& text) {
  const size_t skip = !text.empty() && text[0] == '+' ? 1 : 0;
  double value = 0.0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data() + skip, end, value);
  return text.size() > skip && ec == std::errc::result_out_of_range && ptr == end;
}

}  // namespace uotflow
