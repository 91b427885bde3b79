// Processes that train one run together (data parallel), over PyTorch's c10d: a TCPStore
// rendezvous and a Gloo process group (CPU tensors). One process is a Collective of one, whose
// operations do nothing, so code written for several processes runs unchanged in one.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace uotflow {

/// Where a process stands among the processes of a run, as torchrun, srun and `uotflow train
/// --nproc` say it (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).
struct DistOptions {
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  std::string backend = "gloo";  ///< gloo (CPU tensors); nccl needs a LibTorch built with it
  /// How long a collective waits for the other processes before it fails (a rank that died or
  /// hangs), and how long the rendezvous waits for them to arrive.
  double timeout_seconds = 300.0;

  /// The options the environment sets, when WORLD_SIZE is set; a malformed or inconsistent
  /// variable is a ConfigError naming it. UOTFLOW_DIST_TIMEOUT (seconds) sets timeout_seconds.
  static std::optional<DistOptions> from_env();
};

/// The processes of one run. Every process calls each operation in the same order (as the run
/// loop does, step by step); an operation that fails because another process died or timed out
/// raises a RuntimeError saying so, in one line.
class Collective {
 public:
  /// One process: every operation returns at once.
  Collective();
  /// Joins the others: rank 0 serves the TCPStore at master_addr:master_port, every rank
  /// connects to it and builds the process group. Waits up to options.timeout_seconds.
  static std::shared_ptr<Collective> connect(const DistOptions& options);
  ~Collective();

  int64_t rank() const;
  int64_t world_size() const;
  /// Rank 0: the process that keeps the run directory, logs, evaluates and writes.
  bool is_root() const {
    return rank() == 0;
  }
  const std::string& backend() const;

  /// Sums each gradient over the processes and divides by world_size(), in place; one all-reduce
  /// per dtype (the gradients flattened into one buffer: one message instead of one per
  /// tensor). Parameters without a gradient are left out (the same ones on every process).
  void average_gradients(const std::vector<torch::Tensor>& parameters) const;
  /// The mean of each value over the processes (float64, one all-reduce).
  std::vector<double> average(const std::vector<double>& values) const;
  /// Rank 0's bytes, on every process.
  std::string broadcast(const std::string& bytes) const;
  /// Every process's bytes, in rank order, on every process.
  std::vector<std::string> all_gather(const std::string& bytes) const;
  /// Returns when every process has reached it.
  void barrier() const;
  /// Seconds spent in collectives so far (for the logs and the scaling benchmark).
  double seconds_communicating() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace uotflow
