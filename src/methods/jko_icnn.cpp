// JKO-ICNN: per phase (JKO step) k, psi_k starts at the identity map and minimises
// E |x - grad psi_k(x)|^2 / (2h) + F(grad psi_k # rho_k) for a fixed number of iterations, each
// on a fresh draw of rho_0 pushed through the frozen maps of the earlier steps. The entropy of the
// pushforward is E log rho_k(x) - E log det Hess psi_k(x); its first term does not depend on
// psi_k and is left out of the training objective (the logged "objective" omits it), while the
// evaluation carries densities through every map (change of variables) for exact values.
#include "uotflow/methods/jko_icnn.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdio>

#include "uotflow/core/device.h"
#include "uotflow/core/error.h"
#include "uotflow/io/archive.h"
#include "uotflow/methods/jko.h"
#include "uotflow/nets/icnn.h"
#include "uotflow/optim/optimizer.h"

namespace uotflow {
namespace {

std::string map_name(size_t j) {
  char name[32];
  std::snprintf(name, sizeof(name), "map%04zu", j);
  return name;
}

class JkoIcnn : public Method {
 public:
  explicit JkoIcnn(const MethodContext& ctx)
      : options_(JkoIcnnOptions::from_json(ctx.config)),
        net_options_(IcnnOptions::from_json(at_path(ctx.config, "icnn"))),
        functional_(ctx.problem.functional),
        source_(ctx.problem.source),
        parallel_(ctx.parallel),
        device_(ctx.device),
        dim_(ctx.problem.dim),
        clock_{JkoDistance::kW2, ctx.problem.dim},
        check_(ctx.problem),
        psi_(make_net()) {
    const auto start = source_ ? source_->gaussian() : GaussianParams{};
    if (start.mean.defined()) {
      source_gaussian_ = GaussianFit{start.mean, start.covariance};
    } else if (source_ && functional_->needs_entropy()) {
      throw ConfigError("functional '" + get<std::string>(ctx.config, "functional.name") +
                        "' needs the density of rho_0, which source '" +
                        get<std::string>(ctx.config, "source.name") +
                        "' does not have (use a gaussian source)");
    }
    // A lower bound: a batch through each layer, with the gradient's and the Hessian's graphs.
    check_fits_in_memory("jko_icnn.batch_size and icnn.width",
                         sizeof(float) * 4.0 * options_.batch_size() * (dim_ + 1) *
                             static_cast<double>(net_options_.width()) * net_options_.depth());
    optimizer_registry().at(options_.optimizer());
    parallel_.shard_batch(options_.batch_size(), "jko_icnn.batch_size");  // or fails now
  }

  std::vector<Phase> phases() const override {
    return JkoSchedule(options_.n_phases(), options_.iterations())
        .phases(options_.jko_step_size(), clock_);
  }

  std::map<std::string, double> step(int64_t step, RandomStreams& streams) override {
    const int64_t k = step / options_.iterations();
    if (k != phase_) {
      begin_phase(k, streams["init"]);
    }
    const int64_t n = parallel_.shard_batch(options_.batch_size(), "jko_icnn.batch_size");
    ShardMeans logged(parallel_);
    optimizer_->zero_grad();
    auto loss = parallel_.accumulate(streams, [&](RandomStreams& shard) {
      auto& gen = shard["flow"];
      // rho_k: rho_0 through every earlier map (no graph: they are frozen).
      auto x = push(source_->sample(n, gen).to(device_), maps_.size()).first;
      x.requires_grad_(true);
      auto y = psi_->gradient(x, /*create_graph=*/true);
      FlowBatch batch{y};
      batch.gen = &gen;
      if (functional_->needs_entropy()) {
        batch.neg_entropy = -log_det(y, x, gen).mean();  // + E log rho_k(x), constant in psi_k
      }
      auto proximal = w2_proximal_term(x, y, options_.jko_step_size());
      auto f = functional_->value(batch);
      logged.add("w2_previous", proximal);  // scaled below
      logged.add("functional", f);
      return proximal + f;
    });
    parallel_.average_gradients(psi_->parameters());
    const double value = loss.item<double>();
    steps_done_ = step + 1;
    if (!std::isfinite(value)) {
      return {{"objective", value}};  // the run stops here, before any update
    }
    optimizer_->step();
    psi_->project();
    auto values = logged.values();
    values["objective"] = value;
    // The squared W2 the step moves: E |x - grad psi(x)|^2 = 2 h * the proximal term.
    values["w2_previous"] *= 2.0 * options_.jko_step_size();
    return values;
  }

  bool data_parallel() const override {
    return true;
  }

  torch::Tensor sample(int64_t n, at::Generator& gen, bool ema) override {
    TORCH_CHECK(source_, "this method was built without its source (loaded to map inputs only)");
    return transport(source_->sample(n, gen), gen, ema);
  }

  bool maps_inputs() const override {
    return true;
  }
  // grad psi_k o ... o grad psi_0 (x): the flow's composed maps, no noise.
  torch::Tensor transport(const torch::Tensor& x, at::Generator& /*gen*/, bool /*ema*/) override {
    return push(x.to(device_), maps_.size() + 1).first;
  }

  std::vector<EvalRow> evaluate(const torch::Tensor& samples, at::Generator& gen) override {
    const double w_time = options_.jko_step_size() * steps_done_ / options_.iterations();
    const Json times{{"w_time", w_time}};
    std::vector<EvalRow> rows;
    if (source_gaussian_.mean.defined()) {
      // A draw of rho with its log density through every map, for exact values of F and the KL.
      auto x0 = source_->sample(samples.size(0), gen).to(device_);
      auto [x, log_det_sum] = push(x0, maps_.size() + 1, /*with_log_det=*/true);
      auto log_rho =
          gaussian_log_prob(x0.cpu(), source_gaussian_) - log_det_sum.cpu().to(torch::kDouble);
      {
        torch::NoGradGuard no_grad;
        FlowBatch batch{x};
        batch.gen = &gen;
        batch.neg_entropy = log_rho.mean().to(x.scalar_type()).to(device_);
        for (const auto& [name, value] : functional_->terms(batch)) {
          rows.push_back({"functional_" + name, value, times});
        }
      }
      if (check_.defined()) {
        Json extra = times;
        extra["time"] = w_time;
        extra["estimator"] = "density";
        rows.push_back({"kl_density", check_.density_kl(x.cpu(), log_rho, w_time), extra});
      }
    }
    for (const auto& [name, value] : functional_->diagnostics(samples, torch::Tensor())) {
      rows.push_back({name, value, times});
    }
    if (check_.defined()) {
      Json extra = times;
      extra["time"] = w_time;
      extra["estimator"] = "gaussian_fit";
      rows.push_back({"sym_kl", check_.fitted_symmetric_kl(samples, w_time), extra});
    }
    return rows;
  }

  void save(torch::serialize::OutputArchive& archive) override {
    archive.write("jko_icnn_phase", torch::tensor(phase_, torch::kInt64));
    archive.write("jko_icnn_steps_done", torch::tensor(steps_done_, torch::kInt64));
    archive.write("jko_icnn_maps",
                  torch::tensor(static_cast<int64_t>(maps_.size()), torch::kInt64));
    for (size_t j = 0; j < maps_.size(); ++j) {
      write_state(archive, "jko_icnn_" + map_name(j), *maps_[j]);
    }
    write_state(archive, "jko_icnn_psi", *psi_);
    if (optimizer_) {
      write_state(archive, "optimizer", *optimizer_);
    }
  }

  void load(torch::serialize::InputArchive& archive) override {
    torch::Tensor phase, done, count;
    archive.read("jko_icnn_phase", phase);
    archive.read("jko_icnn_steps_done", done);
    archive.read("jko_icnn_maps", count);
    maps_.clear();
    for (int64_t j = 0; j < count.item<int64_t>(); ++j) {
      auto map = make_net();
      read_state(archive, "jko_icnn_" + map_name(j), *map);
      freeze(*map);
      maps_.push_back(map);
    }
    read_state(archive, "jko_icnn_psi", *psi_);
    phase_ = phase.item<int64_t>();
    steps_done_ = done.item<int64_t>();
    if (phase_ >= 0) {
      make_optimizer();  // over the loaded tensors, then its saved state
      read_state(archive, "optimizer", *optimizer_);
    }
  }

  // "model": map0000.*, ..., the earlier maps and then the current one.
  WeightGroups export_weights() override {
    std::map<std::string, torch::Tensor> tensors;
    for (size_t j = 0; j <= maps_.size(); ++j) {
      for (auto& [name, tensor] : named_tensors(j < maps_.size() ? *maps_[j] : *psi_)) {
        tensors[map_name(j) + "." + name] = tensor;
      }
    }
    return {{"model", tensors}};
  }

  void import_weights(const WeightGroups& weights) override {
    auto it = weights.find("model");
    if (it == weights.end()) {
      throw ConfigError("weights lack the group 'model' (model.safetensors)");
    }
    std::vector<std::map<std::string, torch::Tensor>> per_map;
    for (size_t j = 0;; ++j) {
      const auto prefix = map_name(j) + ".";
      std::map<std::string, torch::Tensor> tensors;
      for (auto p = it->second.lower_bound(prefix);
           p != it->second.end() && p->first.rfind(prefix, 0) == 0; ++p) {
        tensors[p->first.substr(prefix.size())] = p->second;
      }
      if (tensors.empty()) {
        break;
      }
      per_map.push_back(std::move(tensors));
    }
    if (per_map.empty()) {
      throw ConfigError("weights 'model' hold no map (map0000.*)");
    }
    maps_.clear();
    for (size_t j = 0; j + 1 < per_map.size(); ++j) {
      auto map = make_net();
      load_named_tensors(*map, per_map[j], "model/" + map_name(j));
      freeze(*map);
      maps_.push_back(map);
    }
    load_named_tensors(*psi_, per_map.back(), "model/" + map_name(per_map.size() - 1));
  }

  std::map<std::string, double> learning_rates() const override {
    return {{"lr", options_.lr()}};
  }

 private:
  std::shared_ptr<Icnn> make_net() const {
    auto net = std::make_shared<Icnn>(dim_, net_options_);
    net->to(device_);
    return net;
  }

  static void freeze(Icnn& net) {
    for (auto& p : net.parameters()) {
      p.requires_grad_(false);
    }
  }

  // The start of JKO step k: psi_{k-1} joins the frozen maps, psi_k starts at the identity and
  // the optimiser anew.
  void begin_phase(int64_t k, at::Generator& gen) {
    if (phase_ >= 0) {
      auto done = make_net();
      load_named_tensors(*done, named_tensors(*psi_), "psi");
      freeze(*done);
      maps_.push_back(done);
    }
    psi_->reset_to_identity(gen);
    make_optimizer();
    phase_ = k;
  }

  void make_optimizer() {
    OptimizerSettings settings;
    settings.lr = options_.lr();
    optimizer_ = optimizer_registry().create(options_.optimizer(), psi_->parameters(), settings);
  }

  // The first `count` maps (the earlier ones, then psi) applied to x0: the points and, with
  // with_log_det, the summed exact log det of their Jacobians (no graph to the weights).
  std::pair<torch::Tensor, torch::Tensor> push(torch::Tensor x, size_t count,
                                               bool with_log_det = false) {
    auto log_det_sum = torch::zeros({x.size(0)}, x.options());
    for (size_t j = 0; j < count; ++j) {
      auto& map = j < maps_.size() ? *maps_[j] : *psi_;
      if (with_log_det) {
        auto input = x.detach().requires_grad_(true);
        auto y = map.gradient(input, /*create_graph=*/true);
        log_det_sum = log_det_sum + log_det_hessian_exact(y, input, false).detach();
        x = y.detach();
      } else {
        x = map.gradient(x.detach(), /*create_graph=*/false);
      }
    }
    return {x, log_det_sum};
  }

  torch::Tensor log_det(const torch::Tensor& y, const torch::Tensor& x, at::Generator& gen) {
    if (options_.log_det() == "exact") {
      return log_det_hessian_exact(y, x, /*create_graph=*/true);
    }
    LogDetOptions settings;
    settings.probes = options_.probes();
    settings.lanczos_steps = options_.lanczos_steps();
    settings.cg_iterations = options_.cg_iterations();
    return log_det_hessian_stochastic(y, x, settings, gen, /*create_graph=*/true);
  }

  JkoIcnnOptions options_;
  IcnnOptions net_options_;
  std::shared_ptr<Functional> functional_;
  std::shared_ptr<const Dataset> source_;
  DataParallel parallel_;
  torch::Device device_;
  int64_t dim_;
  FlowClock clock_;
  GaussianFlowCheck check_;
  GaussianFit source_gaussian_;              // rho_0 when it is a Gaussian (for densities)
  std::vector<std::shared_ptr<Icnn>> maps_;  // psi_0 .. psi_{k-1}, frozen
  std::shared_ptr<Icnn> psi_;                // psi_k, being trained
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  int64_t phase_ = -1;      // phase of the last step taken
  int64_t steps_done_ = 0;  // for the times of an evaluation
};

Json jko_icnn_defaults() {
  Json defaults = JkoIcnnOptions().to_json();
  defaults.merge_patch(functional_flow_defaults());
  defaults["icnn"] = IcnnOptions().to_json();
  return defaults;
}

}  // namespace

JkoIcnnOptions JkoIcnnOptions::from_json(const Json& c) {
  JkoIcnnOptions o;
  o.n_phases(positive_int(c, "jko_icnn.n_phases"))
      .jko_step_size(positive_number(c, "jko_icnn.jko_step_size"))
      .iterations(positive_int(c, "jko_icnn.iterations"))
      .batch_size(positive_int(c, "jko_icnn.batch_size"))
      .optimizer(get<std::string>(c, "jko_icnn.optimizer"))
      .lr(positive_number(c, "jko_icnn.lr"))
      .log_det(get<std::string>(c, "jko_icnn.log_det"))
      .probes(positive_int(c, "jko_icnn.probes"))
      .lanczos_steps(positive_int(c, "jko_icnn.lanczos_steps"))
      .cg_iterations(positive_int(c, "jko_icnn.cg_iterations"));
  if (o.log_det() != "exact" && o.log_det() != "stochastic") {
    throw ConfigError("unknown jko_icnn.log_det '" + o.log_det() + "' (known: exact, stochastic)");
  }
  optimizer_registry().at(o.optimizer());
  return o;
}

Json JkoIcnnOptions::to_json() const {
  return Json{{"jko_icnn",
               {{"n_phases", n_phases()},
                {"jko_step_size", jko_step_size()},
                {"iterations", iterations()},
                {"batch_size", batch_size()},
                {"optimizer", optimizer()},
                {"lr", lr()},
                {"log_det", log_det()},
                {"probes", probes()},
                {"lanczos_steps", lanczos_steps()},
                {"cg_iterations", cg_iterations()}}}};
}

void register_jko_icnn(MethodRegistry& registry) {
  registry.add("jko_icnn",
               "JKO-ICNN: W2 JKO steps whose maps are gradients of input-convex nets, rho_k drawn "
               "through every earlier map (O(K^2); jko_icnn.n_phases, jko_icnn.jko_step_size)",
               [] {
                 MethodEntry entry{[](const MethodContext& ctx) -> std::unique_ptr<Method> {
                                     return std::make_unique<JkoIcnn>(ctx);
                                   },
                                   jko_icnn_defaults};
                 entry.target_is_data = false;
                 entry.jko_steps_key = "jko_icnn.n_phases";
                 return entry;
               });
}

}  // namespace uotflow
