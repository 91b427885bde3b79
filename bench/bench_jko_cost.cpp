// The cost of K JKO steps for the three JKO flows, on one problem: the Fokker-Planck flow from
// N(0, I) towards a Gaussian in d dimensions. S-JKO warm-starts each step (O(K) in all), SW-JKO
// moves one parametrization (O(K)), JKO-ICNN draws rho_k through all k earlier maps (a step k costs
// O(k), K steps O(K^2)). Each method trains K phases of a fixed number of iterations; the table
// gives the total time, the time per iteration of the first and the last phase, and the growth
// exponent b of total ~ K^b fitted by least squares on log-log over the K list (measured).
//
// Usage: bench_jko_cost [--methods sjko,swjko,jko_icnn] [--phases 5,10,20,40] [--iterations 20]
//                       [--dim 2] [--rounds 3] [--plot FILE.png]
// Each configuration is timed `rounds` times, interleaved; the table gives medians. --plot draws
// the time per iteration of each phase k of the largest K, one line per method.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "uotflow/core/blas.h"
#include "uotflow/core/config.h"
#include "uotflow/core/rng.h"
#include "uotflow/io/plot.h"
#include "uotflow/methods/method.h"
#include "uotflow/run/run.h"

namespace {

using Clock = std::chrono::steady_clock;
using uotflow::Json;

struct Timing {
  double total_s = 0;
  std::vector<double> phase_ms;  // per iteration, phase by phase
};

// The shipped OU configs' settings (configs/flow/sjko_ou_d2.json, swgf_ou_d2.json,
// jko_icnn_ou_d2.json) in dimension `dim`, with K phases of `iterations` each.
Json ou_config(const std::string& method, int64_t dim, int64_t phases, int64_t iterations) {
  const Json target{{"name", "quadratic"}, {"params", {{"dim", dim}, {"seed", 0}}}};
  Json file{{"method", method}, {"seed", 1}, {"eval", {{"n", 0}}}};
  if (method == "sjko") {
    file["data"] = {{"name", "gaussian"}, {"params", {{"dim", dim}, {"seed", 0}}}};
    file["generator"] = {{"net", "mlp"}, {"width", 64}, {"depth", 2}, {"nz", 0}};
    file["potential"] = {{"net", "mlp"}, {"width", 64}, {"depth", 2}};
    file["loss"] = {
        {"phi1", "linear"}, {"phi2", "kl"}, {"cost_reduction", "sum"}, {"r1_gamma", 0.0}};
    file["sjko"] = {{"n_phases", phases},
                    {"init_jko_step_size", 0.1},
                    {"jko_step_size", 0.1},
                    {"init_iterations", iterations},
                    {"iterations", iterations}};
    file["train"] = {{"batch_size", 512}, {"ema_decay", 0.0}};
  } else if (method == "swjko") {
    file["functional"] = {{"name", "kl"}, {"params", {{"target", target}}}};
    file["parametrization"] = {{"name", "realnvp"},
                               {"realnvp", {{"couplings", 5}, {"width", 100}}}};
    file["swjko"] = {{"n_phases", phases},
                     {"jko_step_size", 0.05},
                     {"iterations", iterations},
                     {"batch_size", 1024},
                     {"n_projections", 200}};
  } else {
    file["functional"] = {{"name", "kl"}, {"params", {{"target", target}}}};
    file["icnn"] = {{"width", 64}, {"depth", 2}};
    file["jko_icnn"] = {{"n_phases", phases},
                        {"jko_step_size", 0.1},
                        {"iterations", iterations},
                        {"batch_size", 512}};
  }
  return uotflow::resolve_config(file, {}, {});
}

Timing run(const std::string& method_name, int64_t dim, int64_t phases, int64_t iterations) {
  const Json config = ou_config(method_name, dim, phases, iterations);
  const auto problem = uotflow::make_problem(config);
  torch::manual_seed(1);
  auto method = uotflow::method_registry()
                    .create(method_name)
                    .create(uotflow::MethodContext{config, problem, torch::Device(torch::kCPU)});
  uotflow::RandomStreams streams(1);
  Timing timing;
  const auto start = Clock::now();
  int64_t step = 0;
  for (const auto& phase : method->phases()) {
    const auto phase_start = Clock::now();
    const int64_t first = step;
    for (; step < phase.end_step; ++step) {
      method->step(step, streams);
    }
    timing.phase_ms.push_back(
        std::chrono::duration<double, std::milli>(Clock::now() - phase_start).count() /
        static_cast<double>(step - first));
  }
  timing.total_s = std::chrono::duration<double>(Clock::now() - start).count();
  return timing;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The slope of the least-squares line through (log x, log y).
double log_log_slope(const std::vector<double>& x, const std::vector<double>& y) {
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    mx += std::log(x[i]) / x.size();
    my += std::log(y[i]) / y.size();
  }
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (std::log(x[i]) - mx) * (std::log(y[i]) - my);
    sxx += (std::log(x[i]) - mx) * (std::log(x[i]) - mx);
  }
  return sxx > 0 ? sxy / sxx : NAN;
}

template <typename T>
std::vector<T> parse_list(const std::string& text) {
  std::vector<T> out;
  std::stringstream s(text);
  for (std::string item; std::getline(s, item, ',');) {
    if constexpr (std::is_same_v<T, std::string>) {
      out.push_back(item);
    } else {
      out.push_back(std::stoll(item));
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  uotflow::restart_with_better_blas_kernels(argv);  // before any flag is taken from argv
  std::vector<std::string> methods = {"sjko", "swjko", "jko_icnn"};
  std::vector<int64_t> phase_counts = {5, 10, 20, 40};
  int64_t iterations = 20;
  int64_t dim = 2;
  int rounds = 3;
  std::string plot_path;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--methods") {
      methods = parse_list<std::string>(value);
    } else if (flag == "--phases") {
      phase_counts = parse_list<int64_t>(value);
    } else if (flag == "--iterations") {
      iterations = std::stoll(value);
    } else if (flag == "--dim") {
      dim = std::stoll(value);
    } else if (flag == "--rounds") {
      rounds = std::stoi(value);
    } else if (flag == "--plot") {
      plot_path = value;
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  torch::set_num_threads(1);
  for (const auto& m : methods) {
    run(m, dim, 1, 5);  // warm-up: allocator, first-touch pages
  }
  // method -> K -> rounds
  std::map<std::string, std::vector<std::vector<Timing>>> timings;
  for (int r = 0; r < rounds; ++r) {
    for (const auto& m : methods) {
      timings[m].resize(phase_counts.size());
      for (size_t c = 0; c < phase_counts.size(); ++c) {
        timings[m][c].push_back(run(m, dim, phase_counts[c], iterations));
      }
    }
  }
  std::printf(
      "Fokker-Planck flow, d = %lld, %lld iterations per JKO step, 1 thread, median of %d\n",
      static_cast<long long>(dim), static_cast<long long>(iterations), rounds);
  std::printf(
      "| method | K | total s | s per JKO step | ms/iter first step | ms/iter last step | "
      "last/first "
      "|\n|---|---|---|---|---|---|---|\n");
  uotflow::LinePlot plot;
  plot.title = "time per iteration of JKO step k (K = " + std::to_string(phase_counts.back()) +
               ", d = " + std::to_string(dim) + ")";
  plot.x_label = "JKO step k";
  plot.y_label = "ms per iteration";
  std::vector<std::string> exponents;
  for (const auto& m : methods) {
    std::vector<double> ks, totals;
    for (size_t c = 0; c < phase_counts.size(); ++c) {
      std::vector<double> total, first, last, ratio;
      for (const auto& t : timings[m][c]) {
        total.push_back(t.total_s);
        first.push_back(t.phase_ms.front());
        last.push_back(t.phase_ms.back());
        ratio.push_back(t.phase_ms.back() / t.phase_ms.front());
      }
      const double k = static_cast<double>(phase_counts[c]);
      ks.push_back(k);
      totals.push_back(median(total));
      std::printf("| %s | %lld | %.2f | %.3f | %.2f | %.2f | %.2f |\n", m.c_str(),
                  static_cast<long long>(phase_counts[c]), median(total), median(total) / k,
                  median(first), median(last), median(ratio));
    }
    char line[128];
    std::snprintf(line, sizeof(line), "%s: total ~ K^%.2f", m.c_str(), log_log_slope(ks, totals));
    exponents.push_back(line);
    uotflow::LineSeries series{m, {}, {}};
    const auto& largest = timings[m].back();
    for (size_t k = 0; k < largest.front().phase_ms.size(); ++k) {
      std::vector<double> ms;
      for (const auto& t : largest) {
        ms.push_back(t.phase_ms[k]);
      }
      series.x.push_back(static_cast<double>(k));
      series.y.push_back(median(ms));
    }
    plot.series.push_back(series);
  }
  std::printf("\nfitted growth exponents (least squares on log-log over K):\n");
  for (const auto& e : exponents) {
    std::printf("  %s\n", e.c_str());
  }
  if (!plot_path.empty()) {
    uotflow::save_line_plot_png(plot_path, plot);
    std::printf("plot: %s\n", plot_path.c_str());
  }
  return 0;
}
