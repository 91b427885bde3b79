// S-JKO's O(K) claim: trains K phases of a fixed number of iterations and reports the time per
// iteration in the first and in the last phase, and the total time, for several K. A method that
// composed its K maps (or replayed earlier phases) would show the last phase slower than the first
// and a total growing like K^2.
//
// Usage: bench_sjko_phases [--phases 1,5,20,50] [--iterations 40] [--batch 256] [--rounds 3]
// Each configuration is timed `rounds` times, interleaved; the table gives medians.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "uotflow/core/blas.h"
#include "uotflow/core/config.h"
#include "uotflow/core/rng.h"
#include "uotflow/data/dataset.h"
#include "uotflow/methods/method.h"
#include "uotflow/run/run.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Timing {
  double total_s = 0;
  double first_phase_ms = 0;  // per iteration
  double last_phase_ms = 0;   // per iteration
};

// The toy reference settings (25 Gaussians, ResNet_FC 128 x 3 nets, nz 2) as `uotflow train`
// would resolve them, with K phases of `iterations` each.
Timing run_sjko(int64_t phases, int64_t iterations, int64_t batch) {
  using uotflow::Json;
  Json file = {{"method", "sjko"},
               {"seed", 1},
               {"data", {{"name", "25gaussians"}}},
               {"sjko",
                {{"n_phases", phases},
                 {"init_iterations", iterations},
                 {"iterations", iterations},
                 {"jko_step_size", 1.0},
                 {"init_jko_step_size", 1.0}}},
               {"loss", {{"cost_reduction", "mean"}}},
               {"train", {{"batch_size", batch}}}};
  const Json config = uotflow::resolve_config(file, {}, {});
  const auto problem = uotflow::make_problem(config);
  torch::manual_seed(1);
  auto method = uotflow::method_registry().create("sjko").create(
      uotflow::MethodContext{config, problem, torch::Device(torch::kCPU)});
  uotflow::RandomStreams streams(1);
  const auto ends = method->phases();
  Timing timing;
  const auto start = Clock::now();
  int64_t step = 0;
  for (size_t k = 0; k < ends.size(); ++k) {
    const auto phase_start = Clock::now();
    const int64_t first = step;
    for (; step < ends[k].end_step; ++step) {
      method->step(step, streams);
    }
    const double ms =
        std::chrono::duration<double, std::milli>(Clock::now() - phase_start).count() /
        static_cast<double>(step - first);
    if (k == 0) {
      timing.first_phase_ms = ms;
    }
    timing.last_phase_ms = ms;
  }
  timing.total_s = std::chrono::duration<double>(Clock::now() - start).count();
  return timing;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::vector<int64_t> parse_list(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream s(text);
  for (std::string item; std::getline(s, item, ',');) {
    out.push_back(std::stoll(item));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  uotflow::restart_with_better_blas_kernels(argv);  // before any flag is taken from argv
  std::vector<int64_t> phase_counts = {1, 5, 20, 50};
  int64_t iterations = 40;
  int64_t batch = 256;
  int rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--phases") {
      phase_counts = parse_list(value);
    } else if (flag == "--iterations") {
      iterations = std::stoll(value);
    } else if (flag == "--batch") {
      batch = std::stoll(value);
    } else if (flag == "--rounds") {
      rounds = std::stoi(value);
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  torch::set_num_threads(1);
  run_sjko(1, 10, batch);  // warm-up: allocator, first-touch pages

  std::vector<std::vector<Timing>> timings(phase_counts.size());
  for (int r = 0; r < rounds; ++r) {
    for (size_t c = 0; c < phase_counts.size(); ++c) {
      timings[c].push_back(run_sjko(phase_counts[c], iterations, batch));
    }
  }
  std::printf(
      "S-JKO, 25gaussians toy nets, batch %lld, %lld iterations per phase, 1 thread, "
      "median of %d\n",
      static_cast<long long>(batch), static_cast<long long>(iterations), rounds);
  std::printf(
      "| K | total s | s per phase | ms/iter first phase | ms/iter last phase | last/first |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (size_t c = 0; c < phase_counts.size(); ++c) {
    std::vector<double> total, first, last, ratio;
    for (const auto& t : timings[c]) {
      total.push_back(t.total_s);
      first.push_back(t.first_phase_ms);
      last.push_back(t.last_phase_ms);
      ratio.push_back(t.last_phase_ms / t.first_phase_ms);
    }
    const double k = static_cast<double>(phase_counts[c]);
    std::printf("| %lld | %.2f | %.3f | %.2f | %.2f | %.3f |\n",
                static_cast<long long>(phase_counts[c]), median(total), median(total) / k,
                median(first), median(last), median(ratio));
  }
  return 0;
}
