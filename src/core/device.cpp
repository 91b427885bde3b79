// Device names from configs and flags.
#include "uotflow/core/device.h"

#include <torch/cuda.h>
#include <unistd.h>

#include <algorithm>
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

void check_fits_in_memory(const std::string& key, double bytes) {
  const auto memory = static_cast<double>(physical_memory_bytes());
  if (memory > 0 && bytes > memory) {
    std::ostringstream msg;
    msg << std::setprecision(3) << key << " needs about " << bytes / (1 << 30)
        << " GiB, more than the " << memory / (1 << 30) << " GiB of memory of this machine";
    throw ConfigError(msg.str());
  }
}

}  // namespace uotflow
