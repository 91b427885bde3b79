// Small file utilities: atomic writes (temp file + fsync + rename), append-mode text, whole-file
// reads.
#include "uotflow/io/files.h"

#include "uotflow/core/error.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace uotflow {

namespace {

// NAME.uotflow-tmp.PID: a name no user file has by accident (the run lock removes such files of
// dead writers).
constexpr const char* kTempInfix = ".uotflow-tmp.";

std::string errno_text() {
  return std::strerror(errno);
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& content) {
  // The temp file lives in the target's folder so that rename() stays on one file system and is
  // atomic; the pid keeps concurrent writers (e.g. two runs sharing a folder) from clobbering each
  // other's temp.
  const std::string tmp = path + kTempInfix + std::to_string(::getpid());
  std::FILE* file = std::fopen(tmp.c_str(), "wb");
  if (file == nullptr) {
    throw RuntimeError("cannot write file '" + path + "': " + errno_text());
  }
  bool ok =
      content.empty() || std::fwrite(content.data(), 1, content.size(), file) == content.size();
  // fsync before rename: otherwise a crash can leave the renamed file empty on some file systems.
  ok = ok && std::fflush(file) == 0 && ::fsync(::fileno(file)) == 0;
  const std::string reason = ok ? "" : errno_text();
  ok = (std::fclose(file) == 0) && ok;
  if (ok && std::rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
  }
  if (!ok) {
    const std::string why = reason.empty() ? errno_text() : reason;
    std::remove(tmp.c_str());
    throw RuntimeError("cannot write file '" + path + "': " + why);
  }
}

void append_line(const std::string& path, const std::string& line) {
  std::FILE* file = std::fopen(path.c_str(), "ab");
  if (file == nullptr) {
    throw RuntimeError("cannot append to file '" + path + "': " + errno_text());
  }
  const std::string text = line + "\n";
  // One fwrite per line so that a reader tailing the file never sees half a line from us.
  bool ok = std::fwrite(text.data(), 1, text.size(), file) == text.size();
  ok = (std::fclose(file) == 0) && ok;
  if (!ok) {
    throw RuntimeError("cannot append to file '" + path + "': " + errno_text());
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigError("cannot read file '" + path + "'");
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) {
    throw ConfigError("cannot read file '" + path + "'");
  }
  return buffer.str();
}

}  // namespace uotflow
