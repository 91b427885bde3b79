// SW-JKO: per phase (JKO step) k, freeze rho_k and minimise SW2^2(rho, rho_k) / (2 tau) + F(rho)
// for a fixed number of iterations, each on a fresh batch and fresh directions, with an optimiser
// started anew per phase (as the reference does).
#include "uotflow/methods/swjko.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <tuple>

#include "uotflow/core/device.h"
#include "uotflow/core/error.h"
#include "uotflow/flow/parametrization.h"
#include "uotflow/io/archive.h"
#include "uotflow/methods/jko.h"
#include "uotflow/optim/optimizer.h"
#include "uotflow/ot/sliced.h"

namespace uotflow {
namespace {

class Swjko : public Method {
 public:
  // A parametrization starts from rho_0; a run loaded to map given inputs has none, and SW-JKO's
  // samples are not images of source points.
  static const Dataset& source_of(const Problem& problem) {
    if (!problem.source) {
      throw ConfigError(
          "method 'swjko' does not map given inputs (its samples are not images of "
          "source points)");
    }
    return *problem.source;
  }

  explicit Swjko(const MethodContext& ctx)
      : options_(SwjkoOptions::from_json(ctx.config)),
        functional_(ctx.problem.functional),
        parallel_(ctx.parallel),
        device_(ctx.device),
        dim_(ctx.problem.dim),
        schedule_(options_.n_phases(), options_.iterations(), options_.first_iterations(),
                  "swjko.first_iterations"),
        clock_{JkoDistance::kSW2, ctx.problem.dim},
        check_(ctx.problem),
        rho_(make_parametrization(at_path(ctx.config, "parametrization"), source_of(ctx.problem),
                                  ctx.device, ctx.problem.image_shape)) {
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
    const auto name = get<std::string>(ctx.config, "parametrization.name");
    if (name == "particles" && functional_->needs_entropy()) {
      // The KDE entropy compares every pair of particles (differences, distances, kernels).
      const double n = get<int64_t>(ctx.config, "parametrization.particles.n");
      check_fits_in_memory(
          "parametrization.particles.n with an entropy term (a KDE over all pairs)",
          sizeof(float) * n * n * (dim_ + 4.0));
    }
    if (parallel_.active() && (name == "particles" || name == "grid")) {
      throw ConfigError("parametrization '" + name +
                        "' holds the whole measure, in every process alike: it has no batches to "
                        "split into shards (train.shards 1 and one process, or a generator, "
                        "conv_generator or realnvp)");
    }
    parallel_.shard_batch(options_.batch_size(), "swjko.batch_size");  // or fails now
    optimizer_name_ =
        options_.optimizer() == "default" ? rho_->default_optimizer() : options_.optimizer();
    optimizer_registry().at(optimizer_name_);  // unknown names fail before anything is written
  }

  std::vector<Phase> phases() const override {
    return schedule_.phases(options_.jko_step_size(), clock_);
  }

  std::map<std::string, double> step(int64_t step, RandomStreams& streams) override {
    const int64_t k = schedule_.phase_of(step);
    if (k != phase_) {
      begin_phase(k);
    }
    const bool entropy = functional_->needs_entropy();
    const int64_t batch = parallel_.shard_batch(options_.batch_size(), "swjko.batch_size");
    ShardMeans logged(parallel_);
    optimizer_->zero_grad();
    auto loss = parallel_.accumulate(streams, [&](RandomStreams& shard) {
      auto& gen = shard["flow"];
      FlowBatch now = rho_->draw(batch, gen, entropy);
      now.gen = &gen;
      FlowBatch before = rho_->draw_previous(batch, gen);
      auto theta = random_directions(dim_, options_.n_projections(), gen, now.x.options());
      auto sw = sliced_wasserstein_pp(now.x, before.x, theta, 2.0, now.weights, before.weights);
      auto f = functional_->value(now);
      logged.add("sw2_previous", sw);
      logged.add("functional", f);
      return sw / (2.0 * options_.jko_step_size()) + f;
    });
    parallel_.average_gradients(rho_->parameters());
    const double value = loss.item<double>();
    steps_done_ = step + 1;
    if (!std::isfinite(value)) {
      return {{"objective", value}};  // the run stops here, before any update
    }
    const double scale = rho_->gradient_scale();
    if (scale != 1.0) {
      torch::NoGradGuard no_grad;
      for (auto& p : rho_->parameters()) {
        p.mutable_grad().mul_(scale);
      }
    }
    optimizer_->step();
    rho_->project();
    rho_->diffuse(lr_of(k), streams["flow"]);
    auto values = logged.values();
    values["objective"] = value;
    return values;
  }

  torch::Tensor sample(int64_t n, at::Generator& gen, bool /*ema*/) override {
    return rho_->sample(n, gen).x;
  }

  std::vector<EvalRow> evaluate(const torch::Tensor& samples, at::Generator& gen) override {
    const double sw_time = schedule_.time(steps_done_, options_.jko_step_size());
    const double w_time = clock_.w_time(sw_time);
    const Json times{{"sw_time", sw_time}, {"w_time", w_time}};
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
    if (check_.defined()) {
      // The closed form at the dilated W-time, and at the undilated SW-time (which should fit
      // worse: the check of the time scale).
      // rho's log density at the samples, the same for both times.
      const auto log_rho = rho_->has_density() ? rho_->log_density(samples) : torch::Tensor();
      for (const auto& [name, time, axis] :
           {std::tuple<std::string, double, std::string>{"sym_kl_w_time", w_time, "W-time"},
            {"sym_kl_sw_time", sw_time, clock_.axis()}}) {
        Json extra = times;
        extra["time"] = time;
        if (axis != "W-time") {
          extra["time_axis"] = axis;  // rows without one are on W-time
        }
        double value;
        if (rho_->has_density()) {
          value = check_.density_symmetric_kl(
              samples, log_rho, [this](const torch::Tensor& y) { return rho_->log_density(y); },
              time, gen);
          extra["estimator"] = "density";
        } else {
          value = check_.fitted_symmetric_kl(samples, time);
          extra["estimator"] = "gaussian_fit";
        }
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

  bool data_parallel() const override {
    return true;
  }

 private:
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

  SwjkoOptions options_;
  std::shared_ptr<Functional> functional_;
  DataParallel parallel_;
  torch::Device device_;
  int64_t dim_;
  JkoSchedule schedule_;
  FlowClock clock_;  // SW-time, and the W-time it stands for
  GaussianFlowCheck check_;
  std::unique_ptr<Parametrization> rho_;
  std::string optimizer_name_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  int64_t phase_ = -1;      // phase of the last step taken
  int64_t steps_done_ = 0;  // for the times of an evaluation
};

Json swjko_defaults() {
  Json defaults = SwjkoOptions().to_json();
  defaults.merge_patch(functional_flow_defaults());
  defaults["parametrization"] = default_parametrization_section();
  // A finished autoencoder run whose latent space the flow works in ("" = the data space), the
  // checksum of its weights, recorded when the run starts, and whether an empty run is an error
  // (a config meant for a latent space).
  defaults["latent"] = {{"run", ""}, {"sha256", ""}, {"required", false}};
  return defaults;
}

}  // namespace

SwjkoOptions SwjkoOptions::from_json(const Json& c) {
  SwjkoOptions o;
  o.n_phases(positive_int(c, "swjko.n_phases"))
      .jko_step_size(positive_number(c, "swjko.jko_step_size"))
      .iterations(positive_int(c, "swjko.iterations"))
      .first_iterations(get<std::vector<int64_t>>(c, "swjko.first_iterations"))
      .batch_size(positive_int(c, "swjko.batch_size"))
      .n_projections(positive_int(c, "swjko.n_projections"))
      .optimizer(get<std::string>(c, "swjko.optimizer"))
      .lr(positive_number(c, "swjko.lr"))
      .init_lr(positive_number(c, "swjko.init_lr"))
      .momentum(get<double>(c, "swjko.momentum"));
  if (o.optimizer() != "default") {
    optimizer_registry().at(o.optimizer());
  }
  JkoSchedule(o.n_phases(), o.iterations(), o.first_iterations(), "swjko.first_iterations");
  return o;
}

Json SwjkoOptions::to_json() const {
  return Json{{"swjko",
               {{"n_phases", n_phases()},
                {"jko_step_size", jko_step_size()},
                {"iterations", iterations()},
                {"first_iterations", first_iterations()},
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
                 entry.jko_steps_key = "swjko.n_phases";
                 // The "flow" section of earlier versions.
                 entry.renamed_keys = {
                     {"flow.n_steps", "swjko.n_phases"},
                     {"flow.inner_iterations", "swjko.iterations"},
                     {"flow.lr_first", "swjko.init_lr"},
                     {"flow.jko_step_size", "swjko.jko_step_size"},
                     {"flow.batch_size", "swjko.batch_size"},
                     {"flow.n_projections", "swjko.n_projections"},
                     {"flow.optimizer", "swjko.optimizer"},
                     {"flow.lr", "swjko.lr"},
                     {"flow.momentum", "swjko.momentum"},
                     {"parametrization.generator.latent_dim", "parametrization.generator.nz"}};
                 entry.implied_by_sections = {"functional", "flow"};
                 return entry;
               });
}

}  // namespace uotflow
