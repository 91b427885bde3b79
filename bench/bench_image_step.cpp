// Throughput (images/s) of one UOTM training step on 32x32 RGB images with the image nets: the
// DCGAN pair (generator dcgan + potential dcgan) and the NCSN++ pair (generator ncsnpp + potential
// small_conv), at reduced widths so a step takes about a second on one thread. The Python baseline
// is bench/image_step.py; bench/compare_image_step.sh runs both.
//
// Extra flags (read before Google Benchmark's own): --image_steps=N fixes the timed steps per run
// (default: let the library pick), --image_warmup=W untimed steps before timing (default 2),
// --image_parity=1 prints the parameter names, shapes and counts of both pairs and their outputs
// for deterministic weights and inputs as one JSON line (compared with image_step.py --parity),
// then exits.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "uotflow/core/config.h"
#include "uotflow/core/rng.h"
#include "uotflow/data/dataset.h"
#include "uotflow/methods/method.h"
#include "uotflow/nets/nets.h"
#include "uotflow/run/run.h"

#include "bench_main.h"

namespace {

constexpr int64_t kChannels = 3;
constexpr int64_t kSide = 32;
constexpr int64_t kDim = kChannels * kSide * kSide;
constexpr int64_t kPool = 512;  // fixed synthetic images the batches are drawn from

int64_t g_steps = 0;  // 0: Google Benchmark decides
int64_t g_warmup = 2;
int64_t g_parity = 0;

// A fixed pool of random images in [-1, 1], so that no data loading is timed: sample() draws
// indices from the data stream and gathers, as image_step.py does.
class SyntheticImages : public uotflow::Dataset {
 public:
  SyntheticImages() {
    auto gen = uotflow::make_stream(1234, "pool");
    pool_ = torch::rand({kPool, kDim}, gen) * 2 - 1;  // [kPool, 3072]
  }
  int64_t dim() const override {
    return kDim;
  }
  // -> [n, 3072]
  torch::Tensor sample(int64_t n, at::Generator& gen) const override {
    return pool_.index_select(0, torch::randint(kPool, {n}, gen));
  }
  std::vector<int64_t> image_shape() const override {
    return {kChannels, kSide, kSide};
  }
  double plot_radius() const override {
    return 1.0;
  }

 private:
  torch::Tensor pool_;
};

// The two benchmarked pairs. Every net key is set, as the defaults are those of the toy nets.
struct Pair {
  const char* name;
  int64_t batch;
  uotflow::Json generator;
  uotflow::Json potential;
};

std::vector<Pair> pairs() {
  return {
      {"dcgan",
       32,
       {{"net", "dcgan"}, {"width", 32}, {"nz", 100}},
       {{"net", "dcgan"}, {"width", 32}}},
      {"ncsnpp",
       16,
       {{"net", "ncsnpp"},
        {"nf", 32},
        {"ch_mult", {1, 2, 2}},
        {"num_res_blocks", 1},
        {"attn_resolutions", {16}},
        {"nz", 100},
        {"z_emb_dim", 256},
        {"n_mlp", 3}},
       {{"net", "small_conv"}, {"nf", 32}, {"ch_mult", {1, 2, 2, 2}}, {"stddev_group", 4}}},
  };
}

uotflow::Json pair_config(const Pair& pair) {
  const uotflow::Json file = {
      {"seed", 0},
      {"generator", pair.generator},
      {"potential", pair.potential},
      {"loss", {{"phi1", "kl"}, {"phi2", "kl"}, {"r1_gamma", 0.2}, {"cost_scale", 0.001}}},
      {"train", {{"batch_size", pair.batch}, {"d_steps", 1}, {"ema_decay", 0.999}}}};
  return uotflow::resolve_config(file, {}, {});
}

// The method exactly as `uotflow train` builds it (with the synthetic data set in place of
// make_dataset), stepped as the trainer steps it.
void BM_ImageStep(benchmark::State& state, const Pair& pair) {
  torch::manual_seed(0);
  const uotflow::Json cfg = pair_config(pair);
  const auto problem = uotflow::make_problem(cfg, std::make_shared<const SyntheticImages>());
  auto method = uotflow::method_registry().create("uotm").create(
      uotflow::MethodContext{cfg, problem, torch::Device(torch::kCPU)});
  uotflow::RandomStreams streams(0);
  const double n = uotflow::bench::time_training_steps(state, *method, streams, g_warmup);
  state.counters["img_per_s"] =
      benchmark::Counter(n * static_cast<double>(pair.batch), benchmark::Counter::kIsRate);
  state.counters["batch"] = static_cast<double>(pair.batch);
}

// ---- parity: deterministic weights and inputs, the same formulas as image_step.py

// 0.5 sin(0.7 k + index) / sqrt(fan_in) for weights (dim >= 2), 0.1 sin(...) for the rest, k the
// flat position, computed in float64.
void fill_deterministic(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  int64_t index = 0;
  for (auto& p : module.parameters()) {
    const double scale =
        p.dim() >= 2 ? 0.5 / std::sqrt(static_cast<double>(p.numel() / p.size(0))) : 0.1;
    auto k = torch::arange(p.numel(), torch::kFloat64);
    p.copy_((torch::sin(0.7 * k + static_cast<double>(index)) * scale).view(p.sizes()));
    ++index;
  }
}

// [rows, cols] of sin(step * k + phase), k the flat position, float32.
torch::Tensor wave(int64_t rows, int64_t cols, double step, double phase) {
  auto k = torch::arange(rows * cols, torch::kFloat64);
  return torch::sin(step * k + phase).to(torch::kFloat32).view({rows, cols});
}

uotflow::Json describe(const torch::nn::Module& module) {
  uotflow::Json names = uotflow::Json::array();
  uotflow::Json shapes = uotflow::Json::array();
  int64_t count = 0;
  for (const auto& item : module.named_parameters()) {
    names.push_back(item.key());
    shapes.push_back(item.value().sizes().vec());
    count += item.value().numel();
  }
  return {{"params", count}, {"names", names}, {"shapes", shapes}};
}

std::vector<double> values(const torch::Tensor& t) {
  auto flat = t.detach().to(torch::kFloat64).contiguous().view(-1);
  return std::vector<double>(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
}

int print_parity() {
  constexpr int64_t kParityBatch = 4;
  uotflow::Json out;
  for (const auto& pair : pairs()) {
    const uotflow::Json cfg = pair_config(pair);
    auto generator = uotflow::make_generator(kDim, uotflow::at_path(cfg, "generator"));
    auto potential = uotflow::make_potential(kDim, uotflow::at_path(cfg, "potential"));
    fill_deterministic(*generator);
    fill_deterministic(*potential);
    torch::NoGradGuard no_grad;
    auto x = wave(kParityBatch, kDim, 0.013, 0.0);                     // [4, 3072]
    auto z = wave(kParityBatch, generator->latent_dim(), 0.029, 1.0);  // [4, nz]
    auto y = wave(kParityBatch, kDim, 0.011, 2.0);                     // [4, 3072]
    auto fake = generator->forward(x, z);                              // [4, 3072]
    auto v = potential->forward(y);                                    // [4]
    out[pair.name] = {{"generator", describe(*generator)},
                      {"potential", describe(*potential)},
                      {"fake_head", values(fake.view(-1).slice(0, 0, 8))},
                      {"fake_sum", fake.sum().item<double>()},
                      {"fake_abs_sum", fake.abs().sum().item<double>()},
                      {"v", values(v)}};
  }
  std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  uotflow::restart_with_better_blas_kernels(argv);  // before any flag is taken from argv
  uotflow::bench::take_int_flags(
      argc, argv,
      {{"image_steps", &g_steps}, {"image_warmup", &g_warmup}, {"image_parity", &g_parity}});
  if (g_parity != 0) {
    torch::set_num_threads(1);
    return print_parity();
  }

  static const std::vector<Pair> kPairs = pairs();
  for (const auto& pair : kPairs) {
    auto* step = benchmark::RegisterBenchmark((std::string("BM_ImageStep/") + pair.name).c_str(),
                                              BM_ImageStep, pair);
    step->Unit(benchmark::kMillisecond)->UseRealTime();
    if (g_steps > 0) {
      step->Iterations(g_steps);
    }
  }
  return uotflow::bench::run_benchmarks(argc, argv);
}
