// Device names from configs and flags.
#include "uotflow/core/device.h"

#include <sys/resource.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <thread>

#include "uotflow/core/error.h"

namespace uotflow {

torch::Device parse_device(const std::string& name) {
  try {
    torch::Device device(name);
    if (device.is_cuda() && !torch::cuda::is_available()) {
      throw ConfigError("device '" + name + "' requested but CUDA is not available");
    }
    if (!device.is_cpu() && !device.is_cuda()) {
      throw ConfigError("unsupported device '" + name + "' (known: cpu, cuda, cuda:N)");
    }
    return device;
  } catch (const c10::Error&) {
    throw ConfigError("invalid device '" + name + "' (known: cpu, cuda, cuda:N)");
  }
}

int checked_threads(int64_t threads) {
  const int64_t cores = std::max<int64_t>(1, std::thread::hardware_concurrency());
  if (threads < 1 || threads > cores) {
    throw ConfigError("threads must be between 1 and " + std::to_string(cores) +
                      " (the cores of this machine), got " + std::to_string(threads));
  }
  return static_cast<int>(threads);
}

int64_t physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long size = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && size > 0 ? static_cast<int64_t>(pages) * size : 0;
}

MemoryLimit available_memory() {
  MemoryLimit limit{static_cast<double>(physical_memory_bytes()), "memory of this machine"};
  const auto lower = [&](double bytes, const char* source) {
    if (bytes > 0 && (limit.bytes <= 0 || bytes < limit.bytes)) {
      limit = {bytes, source};
    }
  };
  struct rlimit address_space {};
  if (::getrlimit(RLIMIT_AS, &address_space) == 0 && address_space.rlim_cur != RLIM_INFINITY) {
    lower(static_cast<double>(address_space.rlim_cur), "address-space limit (ulimit -v)");
  }
  // cgroup v2 ("max" when unlimited), then v1.
  for (const char* path :
       {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(path);
    double bytes = 0;
    if (in >> bytes && bytes < 1e18) {
      lower(bytes, "memory limit of this cgroup");
      break;
    }
  }
  if (limit.bytes <= 0) {
    limit.source.clear();
  }
  return limit;
}

void check_fits_in_memory(const std::string& key, double bytes) {
  const auto memory = available_memory();
  if (memory.bytes > 0 && bytes > memory.bytes) {
    std::ostringstream msg;
    msg << std::setprecision(3) << key << " needs about " << bytes / (1 << 30)
        << " GiB, more than the " << memory.bytes / (1 << 30) << " GiB " << memory.source;
    throw ConfigError(msg.str());
  }
}

}  // namespace uotflow
