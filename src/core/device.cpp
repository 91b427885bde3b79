// Device names from configs and flags.
#include "uotflow/core/device.h"

#include <torch/cuda.h>

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

}  // namespace uotflow
