#include "launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <thread>

namespace uotflow_cli {
namespace {

std::atomic<int> g_forward_signal{0};

void remember_signal(int signal) {
  g_forward_signal.store(signal);
}

// A TCP port on the loopback interface that nothing listens on now (rank 0's store takes it).
int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    throw std::runtime_error(std::string("--nproc: no socket for a port: ") + std::strerror(errno));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string error = std::strerror(errno);
    close(fd);
    throw std::runtime_error("--nproc: no free port on the loopback interface: " + error);
  }
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

int launch_local_processes(int nproc, const std::vector<std::string>& args, double grace_seconds) {
  const int port = free_loopback_port();
  std::signal(SIGINT, remember_signal);
  std::signal(SIGTERM, remember_signal);
  std::vector<pid_t> children;
  const pid_t launcher = getpid();
  for (int rank = 0; rank < nproc; ++rank) {
    const pid_t pid = fork();
    if (pid < 0) {
      std::cerr << "uotflow: error: --nproc: could not start process " << rank << ": "
                << std::strerror(errno) << std::endl;
      for (pid_t child : children) {
        kill(child, SIGKILL);
      }
      return 1;
    }
    if (pid == 0) {
      // A process group of its own: Ctrl-C at a terminal reaches the launcher alone, which passes
      // it on once (a second SIGINT would end a process before its checkpoint). And a copy ends
      // with the launcher, even when the launcher is killed.
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != launcher) {
        _exit(1);  // the launcher died before prctl took effect
      }
      std::signal(SIGINT, SIG_DFL);
      std::signal(SIGTERM, SIG_DFL);
      setenv("RANK", std::to_string(rank).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      std::vector<char*> argv;
      for (const auto& a : args) {
        argv.push_back(const_cast<char*>(a.c_str()));
      }
      argv.push_back(nullptr);
      execv("/proc/self/exe", argv.data());
      std::cerr << "uotflow: error: --nproc: could not run this program again: "
                << std::strerror(errno) << std::endl;
      _exit(127);
    }
    children.push_back(pid);
  }

  int result = 0;
  size_t running = children.size();
  std::vector<bool> done(children.size(), false);
  auto stop_deadline = std::chrono::steady_clock::time_point::max();
  bool told_to_stop = false;
  while (running > 0) {
    if (const int signal = g_forward_signal.exchange(0); signal != 0) {
      for (size_t i = 0; i < children.size(); ++i) {
        if (!done[i]) {
          kill(children[i], signal);
        }
      }
    }
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      for (size_t i = 0; i < children.size(); ++i) {
        if (children[i] != pid) {
          continue;
        }
        done[i] = true;
        --running;
        const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (code != 0 && result == 0) {
          result = code;
          if (WIFSIGNALED(status)) {
            std::cerr << "uotflow: error: process " << i << " of " << nproc
                      << " was killed by signal " << WTERMSIG(status) << "; the others stop"
                      << std::endl;
          }
        }
      }
      continue;
    }
    if (result != 0 && !told_to_stop) {
      // One failed: the others fail in their next collective; stop them if they do not.
      told_to_stop = true;
      stop_deadline = std::chrono::steady_clock::now() +
                      std::chrono::milliseconds(static_cast<int64_t>(grace_seconds * 1000));
    }
    if (told_to_stop && std::chrono::steady_clock::now() > stop_deadline) {
      for (size_t i = 0; i < children.size(); ++i) {
        if (!done[i]) {
          kill(children[i], SIGKILL);
        }
      }
      stop_deadline = std::chrono::steady_clock::time_point::max();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return result;
}

}  // namespace uotflow_cli
