#include "uotflow/core/distributed.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>

#include "uotflow/core/error.h"

namespace uotflow {

namespace {

// An environment variable as an integer in [lo, hi], or a ConfigError naming it.
int64_t env_int(const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') {
    return fallback;
  }
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || *end != '\0' || value < lo || value > hi) {
    throw ConfigError(std::string("environment variable ") + name + "='" + text +
                      "' must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                      "]");
  }
  return value;
}

// The first line of a library's message (c10d's carry a C++ backtrace after it).
std::string first_line(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

}  // namespace

std::optional<DistOptions> DistOptions::from_env() {
  if (std::getenv("WORLD_SIZE") == nullptr) {
    return std::nullopt;
  }
  DistOptions o;
  o.world_size = env_int("WORLD_SIZE", 1, 1, 1 << 20);
  o.rank = env_int("RANK", 0, 0, o.world_size - 1);
  o.local_rank = env_int("LOCAL_RANK", 0, 0, o.world_size - 1);
  if (const char* addr = std::getenv("MASTER_ADDR"); addr != nullptr && *addr != '\0') {
    o.master_addr = addr;
  }
  o.master_port = env_int("MASTER_PORT", o.master_port, 1, 65535);
  if (const char* t = std::getenv("UOTFLOW_DIST_TIMEOUT"); t != nullptr && *t != '\0') {
    char* end = nullptr;
    const double seconds = std::strtod(t, &end);
    if (*end != '\0' || !(seconds > 0) || seconds > 1e6) {
      throw ConfigError(std::string("environment variable UOTFLOW_DIST_TIMEOUT='") + t +
                        "' must be a number of seconds in (0, 1e6]");
    }
    o.timeout_seconds = seconds;
  }
  return o;
}

struct Collective::Impl {
  int64_t rank = 0;
  int64_t world_size = 1;
  std::string backend = "none";
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  mutable double seconds = 0.0;

  // Runs one collective and waits for it; a failure (a process gone, a timeout) becomes one line.
  template <typename F>
  void run(const char* what, F&& start) const {
    const auto t0 = std::chrono::steady_clock::now();
    try {
      auto work = start();
      work->wait();
    } catch (const std::exception& e) {
      throw RuntimeError("data parallel: " + std::string(what) + " failed on rank " +
                         std::to_string(rank) + " of " + std::to_string(world_size) +
                         " (another process stopped or timed out): " + first_line(e.what()));
    }
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
};

Collective::Collective() : impl_(std::make_unique<Impl>()) {}
Collective::~Collective() = default;

std::shared_ptr<Collective> Collective::connect(const DistOptions& o) {
  if (o.world_size < 1 || o.rank < 0 || o.rank >= o.world_size) {
    throw ConfigError("data parallel: rank " + std::to_string(o.rank) + " is outside a world of " +
                      std::to_string(o.world_size) + " processes");
  }
  auto c = std::make_shared<Collective>();
  if (o.world_size == 1) {
    return c;
  }
  if (o.backend != "gloo") {
    throw ConfigError("data parallel: backend '" + o.backend +
                      "' is not built into this LibTorch; use gloo");
  }
  auto& impl = *c->impl_;
  impl.rank = o.rank;
  impl.world_size = o.world_size;
  impl.backend = o.backend;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(o.timeout_seconds * 1000));
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<std::uint16_t>(o.master_port);
    store_options.isServer = o.rank == 0;
    store_options.numWorkers = static_cast<std::size_t>(o.world_size);
    store_options.waitWorkers = true;
    store_options.timeout = timeout;
    impl.store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, store_options);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    options->threads = 2;
    impl.group = c10::make_intrusive<c10d::ProcessGroupGloo>(
        impl.store, static_cast<int>(o.rank), static_cast<int>(o.world_size), options);
  } catch (const std::exception& e) {
    throw RuntimeError("data parallel: rank " + std::to_string(o.rank) + " of " +
                       std::to_string(o.world_size) + " could not join the others at " +
                       o.master_addr + ":" + std::to_string(o.master_port) + ": " +
                       first_line(e.what()));
  }
  return c;
}

int64_t Collective::rank() const {
  return impl_->rank;
}
int64_t Collective::world_size() const {
  return impl_->world_size;
}
const std::string& Collective::backend() const {
  return impl_->backend;
}
double Collective::seconds_communicating() const {
  return impl_->seconds;
}

void Collective::average_gradients(const std::vector<torch::Tensor>& parameters) const {
  if (impl_->world_size == 1) {
    return;
  }
  // One flat buffer per (dtype, device): one message, the gradients copied in and back.
  std::map<std::pair<int, std::string>, std::vector<torch::Tensor>> buckets;
  for (const auto& p : parameters) {
    if (p.grad().defined()) {
      buckets[{static_cast<int>(p.scalar_type()), p.device().str()}].push_back(p.grad());
    }
  }
  for (auto& [key, grads] : buckets) {
    std::vector<torch::Tensor> flat_views;
    flat_views.reserve(grads.size());
    for (const auto& g : grads) {
      flat_views.push_back(g.reshape({-1}));
    }
    std::vector<torch::Tensor> flat{torch::cat(flat_views)};
    impl_->run("gradient all-reduce", [&] { return impl_->group->allreduce(flat); });
    flat[0].div_(static_cast<double>(impl_->world_size));
    int64_t offset = 0;
    for (auto& g : grads) {
      const int64_t n = g.numel();
      g.copy_(flat[0].narrow(0, offset, n).view_as(g));
      offset += n;
    }
  }
}

std::vector<double> Collective::average(const std::vector<double>& values) const {
  if (impl_->world_size == 1 || values.empty()) {
    return values;
  }
  std::vector<torch::Tensor> t{torch::tensor(values, torch::dtype(torch::kFloat64)).clone()};
  impl_->run("all-reduce", [&] { return impl_->group->allreduce(t); });
  t[0].div_(static_cast<double>(impl_->world_size));
  return std::vector<double>(t[0].data_ptr<double>(), t[0].data_ptr<double>() + values.size());
}

std::string Collective::broadcast(const std::string& bytes) const {
  if (impl_->world_size == 1) {
    return bytes;
  }
  std::vector<torch::Tensor> size{
      torch::full({1}, static_cast<int64_t>(bytes.size()), torch::dtype(torch::kInt64))};
  impl_->run("broadcast", [&] { return impl_->group->broadcast(size); });
  const int64_t n = size[0].item<int64_t>();
  std::vector<torch::Tensor> data{torch::empty({std::max<int64_t>(n, 1)}, torch::kUInt8)};
  if (impl_->rank == 0) {
    std::memcpy(data[0].data_ptr<uint8_t>(), bytes.data(), bytes.size());
  }
  impl_->run("broadcast", [&] { return impl_->group->broadcast(data); });
  return std::string(reinterpret_cast<const char*>(data[0].data_ptr<uint8_t>()),
                     static_cast<size_t>(n));
}

std::vector<std::string> Collective::all_gather(const std::string& bytes) const {
  if (impl_->world_size == 1) {
    return {bytes};
  }
  const auto world = impl_->world_size;
  // The sizes first, then every process's bytes padded to the largest.
  std::vector<torch::Tensor> my_size{
      torch::full({1}, static_cast<int64_t>(bytes.size()), torch::dtype(torch::kInt64))};
  std::vector<std::vector<torch::Tensor>> sizes(1);
  for (int64_t r = 0; r < world; ++r) {
    sizes[0].push_back(torch::empty({1}, torch::kInt64));
  }
  impl_->run("all-gather", [&] { return impl_->group->allgather(sizes, my_size); });
  int64_t longest = 1;
  for (const auto& s : sizes[0]) {
    longest = std::max(longest, s.item<int64_t>());
  }
  std::vector<torch::Tensor> mine{torch::zeros({longest}, torch::kUInt8)};
  std::memcpy(mine[0].data_ptr<uint8_t>(), bytes.data(), bytes.size());
  std::vector<std::vector<torch::Tensor>> all(1);
  for (int64_t r = 0; r < world; ++r) {
    all[0].push_back(torch::empty({longest}, torch::kUInt8));
  }
  impl_->run("all-gather", [&] { return impl_->group->allgather(all, mine); });
  std::vector<std::string> out;
  for (int64_t r = 0; r < world; ++r) {
    out.emplace_back(reinterpret_cast<const char*>(all[0][r].data_ptr<uint8_t>()),
                     static_cast<size_t>(sizes[0][r].item<int64_t>()));
  }
  return out;
}

void Collective::barrier() const {
  if (impl_->world_size == 1) {
    return;
  }
  impl_->run("barrier", [&] { return impl_->group->barrier(); });
}

}  // namespace uotflow
