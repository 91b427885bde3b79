// Run-directory lock and the clean-up of dead writers' temp files.
#include "uotflow/io/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <regex>

#include "uotflow/core/config.h"
#include "uotflow/core/error.h"
#include "uotflow/io/files.h"

namespace fs = std::filesystem;

namespace uotflow {
namespace {

// Removes NAME.uotflow-tmp.PID files (write_file_atomic's temps) of other processes; a user's
// NAME.tmp.N is not one. Every writer of a run
// holds its lock, so while we hold it no other writer is active: such files are left by writers
// that died mid-write. (Asking whether PID is alive would be wrong: PIDs and thread ids are
// reused.)
int remove_dead_temp_files(const std::string& run_dir) {
  static const std::regex kTemp(R"(.+\.uotflow-tmp\.(\d{1,9}))");
  int removed = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(run_dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::smatch m;
    const auto name = it->path().filename().string();
    if (it->is_regular_file(ec) && std::regex_match(name, m, kTemp) &&
        std::stol(m[1].str()) != static_cast<long>(::getpid())) {
      removed += fs::remove(it->path(), ec) ? 1 : 0;
    }
  }
  return removed;
}

}  // namespace

RunLock::RunLock(const std::string& run_dir) {
  const auto path = (fs::path(run_dir) / ".lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw ConfigError("cannot open the lock of run '" + run_dir + "': " + std::strerror(errno));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::string holder;
    try {
      holder = read_file(path);
    } catch (const ConfigError&) {
    }
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK) {
      while (!holder.empty() && std::isspace(static_cast<unsigned char>(holder.back()))) {
        holder.pop_back();
      }
      throw ConfigError("run '" + run_dir + "' is in use by another uotflow process" +
                        (holder.empty() ? "" : " (pid " + holder + ")") +
                        "; wait for it to finish or stop it first");
    }
    throw ConfigError("cannot lock run '" + run_dir + "': " + std::strerror(err));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
    // The lock holds without the pid; the holder is only named less precisely.
  }
  removed_ = remove_dead_temp_files(run_dir);
}

RunLock::~RunLock() {
  if (fd_ >= 0) {
    ::close(fd_);  // releases the flock
  }
}

std::string enclosing_run_dir(const std::string& path) {
  std::error_code ec;
  auto dir = fs::weakly_canonical(fs::absolute(path, ec), ec);
  if (ec) {
    return "";
  }
  for (dir = dir.parent_path(); !dir.empty(); dir = dir.parent_path()) {
    const auto config = dir / "config.json";
    if (fs::is_regular_file(config, ec)) {
      try {
        const Json stored = parse_json(read_file(config.string()), config.string());
        if (stored.is_object() && stored.contains("meta")) {
          return dir.string();
        }
      } catch (const ConfigError&) {
      }
    }
    if (dir == dir.root_path()) {
      break;
    }
  }
  return "";
}

}  // namespace uotflow
