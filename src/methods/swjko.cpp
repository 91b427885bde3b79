// SW-JKO: per phase (JKO step) k, freeze rho_k and minimise SW2^2(rho, rho_k) / (2 tau) + F(rho)
// for a fixed number of iterations, each on a fresh batch and fresh directions, with an optimiser
// started anew per phase (as the reference does).
#include "uotflow/methods/swjko.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "uotflow/core/device.h"
#include "uotflow/core/error.h"
#include "uotflow/flow/parametrization.h"
#include "uotflow/io/archive.h"
#include "uotflow/metrics/gaussian.h"
#include "uotflow/optim/optimizer.h"
#include "uotflow/ot/sliced.h"

namespace uotflow {
namespace {

// log N(x; m, S) for the rows of x: [N, D] (float64).
torch::Tensor gaussian_log_prob(const torch::Tensor& x, const GaussianFit& g) {
  auto l = torch::linalg_cholesky(g.cov);
  auto diff = (x.to(torch::kDouble) - g.mean).t();  // [D, N]
  auto sol = torch::linalg_solve_triangular(l, diff, /*upper=*/false);
  const double d = static_cast<double>(x.size(1));
  return -0.5 * sol.pow(2).sum(0) - l.diagonal().log().sum() - 0.5 * d * std::log(2 * M_PI);
}

torch::Tensor gaussian_draw(const GaussianFit& g, int64_t n, at::Generator& gen) {
  auto l = torch::linalg_cholesky(g.cov);
  return g.mean + torch::randn({n, g.mean.size(0)}, gen, torch::kDouble).matmul(l.t());
}

// A Gaussian-fit statistic of samples, or NaN when the fit is singular or samples not finite.
template <typename F>
double fitted(const torch::Tensor& x, F&& statistic) {
  if (!torch::isfinite(x).all().item<bool>()) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  try {
    return statistic(fit_gaussian(x));
  } catch (const ConfigError&) {
    return std::numeric_limits<double>::quiet_NaN();
  }
}

class Swjko : public Method {
 public:
  explicit Swjko(const MethodContext& ctx)
      : options_(SwjkoOptions::from_json(ctx.config)),
        functional_(ctx.problem.functional),
        device_(ctx.device),
        dim_(ctx.problem.dim),
        rho_(make_parametrization(at_path(ctx.config, "parametrization"), *ctx.problem.source,
                                  ctx.device)) {
    if (functional_->needs_entropy() && !rho_->has_entropy()) {
      throw ConfigError("functional '" + get<std::string>(ctx.config, "functional.name") +
                        "' needs an entropy estimate, which parametrization '" +
                        get<std::string>(ctx.config, "parametrization.name") +
                        "' cannot give (use realnvp, particles or grid)");
    }
    // A lower bound: two batches, their projections and the directions (float32).
    const double batch = options_.batch_size(), projections = options_.n_projections();
    check_fits_in_memory(
        "swjko.batch_size and swjko.n_projections",
        sizeof(float) * (2 * batch * dim_ + 2 * batch * projections + projections * dim_));
    optimizer_name_ =
        options_.optimizer() == "default" ? rho_->default_optimizer() : options_.optimizer();
    optimizer_registry().at(optimizer_name_);  // unknown names fail before anything is written
    const auto target = functional_->gaussian_target();
    if (target.mean.defined()) {
      target_ = GaussianFit{target.mean, target.covariance};
      const auto start = ctx.problem.source->gaussian();
      if (start.mean.defined()) {
        start_ = GaussianFit{start.mean, start.covariance};
      }
    }
  }

  std::vector<Phase> phases() const override {
    std::vector<Phase> out;
    for (int64_t k = 1; k <= options_.n_phases(); ++k) {
      out.push_back(Phase{k * options_.iterations(), w_time(static_cast<double>(k))});
    }
    return out;
  }

  std::map<std::string, double> step(int64_t step, RandomStreams& streams) override {
    const int64_t k = step / options_.iterations();
    if (k != phase_) {
      begin_phase(k);
    }
    auto& gen = streams["flow"];
    const bool entropy = functional_->needs_entropy();
    FlowBatch now = rho_->draw(options_.batch_size(), gen, entropy);
    now.gen = &gen;
    FlowBatch before = rho_->draw_previous(options_.batch_size(), gen);
    auto theta = random_directions(dim_, options_.n_projections(), gen, now.x.options());
    auto sw = sliced_wasserstein_pp(now.x, before.x, theta, 2.0, now.weights, before.weights);
    auto f = functional_->value(now);
    auto loss = sw / (2.0 * options_.jko_step_size()) + f;
    const double value = loss.item<double>();
    steps_done_ = step + 1;
    if (!std::isfinite(value)) {
      return {{"objective", value}};  // the run stops here, before any update
    }
    optimizer_->zero_grad();
    loss.backward();
    const double scale = rho_->gradient_scale();
    if (scale != 1.0) {
      torch::NoGradGuard no_grad;
      for (auto& p : rho_->parameters()) {
        p.mutable_grad().mul_(scale);
      }
    }
    optimizer_->step();
    rho_->project();
    return {{"objective", value},
            {"sw2_previous", sw.item<double>()},
            {"functional", f.item<double>()}};
  }

  torch::Tensor sample(int64_t n, at::Generator& gen, bool /*ema*/) override {
    return rho_->sample(n, gen).x;
  }

  std::vector<EvalRow> evaluate(const torch::Tensor& samples, at::Generator& gen) override {
    const double sw_time = options_.jko_step_size() * steps_done_ / options_.iterations();
    const Json times{{"sw_time", sw_time}, {"w_time", sw_time * dim_}};
    std::vector<EvalRow> rows;
    {
      // The objective's terms on an evaluation batch (no gradient).
      torch::NoGradGuard no_grad;
      FlowBatch batch = rho_->draw(samples.size(0), gen, functional_->needs_entropy());
      batch.gen = &gen;
      for (const auto& [name, value] : functional_->terms(batch)) {
        rows.push_back({"functional_" + name, value, times});
      }
    }
    for (const auto& [name, value] : functional_->diagnostics(samples, torch::Tensor())) {
      rows.push_back({name, value, times});
    }
    if (target_.mean.defined() && start_.mean.defined()) {
      for (const auto& [name, time] :
           {std::pair<std::string, double>{"sym_kl_w_time", sw_time * dim_},
            {"sym_kl_sw_time", sw_time}}) {
        auto [value, estimator] =
            symmetric_kl(samples, fokker_planck_gaussian(start_, target_, time), gen);
        Json extra = times;
        extra["time"] = time;
        extra["estimator"] = estimator;
        rows.push_back({name, value, extra});
      }
    }
    return rows;
  }

  void save(torch::serialize::OutputArchive& archive) override {
    write_state(archive, "parametrization", *rho_);
    archive.write("swjko_phase", torch::tensor(phase_, torch::kInt64));
    archive.write("swjko_steps_done", torch::tensor(steps_done_, torch::kInt64));
    if (optimizer_) {
      write_state(archive, "optimizer", *optimizer_);
    }
  }

  void load(torch::serialize::InputArchive& archive) override {
    read_state(archive, "parametrization", *rho_);
    torch::Tensor phase, done;
    archive.read("swjko_phase", phase);
    archive.read("swjko_steps_done", done);
    phase_ = phase.item<int64_t>();
    steps_done_ = done.item<int64_t>();
    if (phase_ >= 0) {
      make_optimizer(phase_);  // over the loaded tensors, then its saved state
      read_state(archive, "optimizer", *optimizer_);
    }
  }

  WeightGroups export_weights() override {
    return {{"model", rho_->export_weights()}};
  }
  void import_weights(const WeightGroups& weights) override {
    auto it = weights.find("model");
    if (it == weights.end()) {
      throw ConfigError("weights lack the group 'model' (model.safetensors)");
    }
    rho_->import_weights(it->second);
  }

  std::map<std::string, double> learning_rates() const override {
    return {{"lr", lr_of(std::max<int64_t>(phase_, 0))}};
  }

 private:
  double w_time(double phases_done) const {
    return phases_done * options_.jko_step_size() * static_cast<double>(dim_);
  }
  double lr_of(int64_t phase) const {
    return phase == 0 ? options_.init_lr() : options_.lr();
  }

  // The start of JKO step k: rho_k is frozen and the optimiser starts anew.
  void begin_phase(int64_t k) {
    rho_->freeze();
    make_optimizer(k);
    phase_ = k;
  }

  void make_optimizer(int64_t k) {
    OptimizerSettings settings;
    settings.lr = lr_of(k);
    settings.momentum = options_.momentum();
    optimizer_ = optimizer_registry().create(optimizer_name_, rho_->parameters(), settings);
  }

  // KL(rho | exact) + KL(exact | rho): Monte Carlo with rho's own density where the
  // parametrization has one (x ~ rho given, as many draws from the exact solution), else between
  // the Gaussian fit of x and the exact solution.
  std::pair<double, std::string> symmetric_kl(const torch::Tensor& x, const GaussianFit& exact,
                                              at::Generator& gen) {
    if (!rho_->has_density()) {
      return {fitted(x, [&](const GaussianFit& fit) { return gaussian_symmetric_kl(fit, exact); }),
              "gaussian_fit"};
    }
    auto y = gaussian_draw(exact, x.size(0), gen).to(torch::kFloat32);
    auto forward = (rho_->log_density(x).to(torch::kDouble) - gaussian_log_prob(x, exact)).mean();
    auto backward = (gaussian_log_prob(y, exact) - rho_->log_density(y).to(torch::kDouble)).mean();
    return {(forward + backward).item<double>(), "density"};
  }

  SwjkoOptions options_;
  std::shared_ptr<Functional> functional_;
  torch::Device device_;
  int64_t dim_;
  std::unique_ptr<Parametrization> rho_;
  std::string optimizer_name_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  int64_t phase_ = -1;      // phase of the last step taken
  int64_t steps_done_ = 0;  // for the times of an evaluation
  GaussianFit target_, start_;
};

int64_t at_least_one(const Json& c, const std::string& key) {
  const auto v = get<int64_t>(c, key);
  if (v < 1) {
    throw ConfigError("config key '" + key + "' must be >= 1, got " + std::to_string(v));
  }
  return v;
}

double positive(const Json& c, const std::string& key) {
  const auto v = get<double>(c, key);
  if (!(v > 0)) {
    throw ConfigError("config key '" + key + "' must be > 0, got " + at_path(c, key).dump());
  }
  return v;
}

Json swjko_defaults() {
  Json defaults = SwjkoOptions().to_json();
  defaults.merge_patch(
      Json{{"dim", 0},
           {"functional", {{"name", "kl"}, {"params", Json::object()}}},
           {"parametrization", default_parametrization_section()},
           // The run's length comes from the phases; one log row, evaluation and checkpoint per JKO
           // step, and rho_0 evaluated too.
           {"train",
            {{"steps", 0},
             {"log_every", 0},
             {"eval_every", 0},
             {"snapshot_every", 0},
             {"checkpoint_every", 0}}},
           {"eval", {{"n", 10000}, {"at_start", true}, {"metrics", Json::array()}}}});
  return defaults;
}

}  // namespace

SwjkoOptions SwjkoOptions::from_json(const Json& c) {
  SwjkoOptions o;
  o.n_phases(at_least_one(c, "swjko.n_phases"))
      .jko_step_size(positive(c, "swjko.jko_step_size"))
      .iterations(at_least_one(c, "swjko.iterations"))
      .batch_size(at_least_one(c, "swjko.batch_size"))
      .n_projections(at_least_one(c, "swjko.n_projections"))
      .optimizer(get<std::string>(c, "swjko.optimizer"))
      .lr(positive(c, "swjko.lr"))
      .init_lr(positive(c, "swjko.init_lr"))
      .momentum(get<double>(c, "swjko.momentum"));
  if (o.optimizer() != "default") {
    optimizer_registry().at(o.optimizer());
  }
  return o;
}

Json SwjkoOptions::to_json() const {
  return Json{{"swjko",
               {{"n_phases", n_phases()},
                {"jko_step_size", jko_step_size()},
                {"iterations", iterations()},
                {"batch_size", batch_size()},
                {"n_projections", n_projections()},
                {"optimizer", optimizer()},
                {"lr", lr()},
                {"init_lr", init_lr()},
                {"momentum", momentum()}}}};
}

void register_swjko(MethodRegistry& registry) {
  registry.add("swjko",
               "SW-JKO: sliced-Wasserstein JKO steps of a functional over particles, a grid, a "
               "generator or a RealNVP (swjko.n_phases, swjko.jko_step_size)",
               [] {
                 MethodEntry entry{[](const MethodContext& ctx) -> std::unique_ptr<Method> {
                                     return std::make_unique<Swjko>(ctx);
                                   },
                                   swjko_defaults};
                 entry.target_is_data = false;
                 return entry;
               });
}

}  // namespace uotflow
