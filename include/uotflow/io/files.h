// Small file utilities: atomic writes, append-mode text, directory helpers.
#pragma once

#include <string>

namespace uotflow {

/// Writes `content` to `path` atomically: a temp file in the same folder, flushed, then renamed
/// over.
void write_file_atomic(const std::string& path, const std::string& content);

/// Appends one line (a newline is added) to a text file, creating it if needed.
void append_line(const std::string& path, const std::string& line);

/// Reads a whole file; raises ConfigError if it cannot be read.
std::string read_file(const std::string& path);

}  // namespace uotflow
