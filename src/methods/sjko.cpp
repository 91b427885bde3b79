// S-JKO: phases k = 0..K-1 of fixed-source UOTM whose cost reference is a frozen copy of the
// generator at the end of the previous phase (the identity in phase 0). Generator, potential,
// optimiser states, EMA and lr schedule run on across phases, so each phase costs the same.
#include "uotflow/methods/sjko.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <utility>

#include "uotflow/core/error.h"
#include "uotflow/io/archive.h"
#include "uotflow/methods/semidual_method.h"
#include "uotflow/optim/schedule.h"
#include "uotflow/ot/phi.h"

namespace uotflow {
namespace {

// The phases of a run: SjkoOptions with the marginal weight of every phase resolved.
struct SjkoSchedule {
  int64_t n_phases = 1;
  double init_step_size = 1.0;
  double step_size = 1.0;
  int64_t init_iterations = 1;
  int64_t iterations = 1;
  double instance_noise = 0.0;
  bool shared_latent = true;
  std::vector<double> marginal_weights;

  explicit SjkoSchedule(const Json& c) {
    const auto o = SjkoOptions::from_json(c);
    n_phases = o.n_phases();
    init_step_size = o.init_jko_step_size();
    step_size = o.jko_step_size();
    init_iterations = o.init_iterations();
    iterations = o.iterations();
    instance_noise = o.instance_noise();
    shared_latent = o.reference_latent() == "shared";
    marginal_weights = o.marginal_weights();
    if (marginal_weights.empty()) {
      marginal_weights.push_back(get<double>(c, "loss.marginal_weight"));
    }
  }

  int64_t phase_start(int64_t k) const {
    return k == 0 ? 0 : init_iterations + (k - 1) * iterations;
  }
  int64_t total_steps() const {
    return phase_start(n_phases);
  }
  int64_t phase_of(int64_t step) const {
    if (step < init_iterations) {
      return 0;
    }
    return std::min(n_phases - 1, 1 + (step - init_iterations) / iterations);
  }
  double jko_step_size(int64_t k) const {
    return k == 0 ? init_step_size : step_size;
  }
  // A shorter list goes on with its last value.
  double marginal_weight(int64_t k) const {
    return marginal_weights[std::min<size_t>(k, marginal_weights.size() - 1)];
  }
};

// The names of the relaxed (non-linear) Psi* entries.
std::string relaxed_phis() {
  std::string out;
  for (const auto& [name, entry] : phi_registry().entries()) {
    if (!entry.factory().linear) {
      out += (out.empty() ? "" : ", ") + name;
    }
  }
  return out;
}

class Sjko : public SemiDualMethod {
 public:
  explicit Sjko(const MethodContext& ctx) : Sjko(ctx, SjkoSchedule(ctx.config)) {}

  Sjko(const MethodContext& ctx, SjkoSchedule schedule)
      : SemiDualMethod(ctx, schedule.total_steps()),
        schedule_(std::move(schedule)),
        phi2_(get<std::string>(ctx.config, "loss.phi2")),
        cost_scale_(positive_number(ctx.config, "loss.cost_scale")),
        reduction_(parse_cost_reduction(get<std::string>(ctx.config, "loss.cost_reduction"))) {
    if (!loss_.phi1.is_linear()) {
      throw ConfigError(
          "method 'sjko' needs a linear loss.phi1 (loss.phi1 = linear: each JKO step is a "
          "fixed-source UOT problem), got '" +
          loss_.phi1.name() + "'");
    }
    if (loss_.phi2.is_linear()) {
      throw ConfigError("method 'sjko' needs a relaxed loss.phi2 (a divergence to the target: " +
                        relaxed_phis() + "), got '" + phi2_ + "'");
    }
    reference_ = make_generator(dim(), options().generator());
    reference_->to(device());
    for (auto& p : reference_->parameters()) {
      p.requires_grad_(false);
    }
  }

  std::vector<Phase> phases() const override {
    std::vector<Phase> out;
    double time = 0.0;
    for (int64_t k = 0; k < schedule_.n_phases; ++k) {
      // cost = cost_scale * reduce|T - T_old|^2 / (2h) is |.|^2 / (2 tau) with tau = h /
      // cost_scale (d h / cost_scale for "mean"); alpha * KL for a time tau flows for alpha * tau.
      double tau = schedule_.jko_step_size(k) / cost_scale_;
      if (reduction_ == CostReduction::kMean) {
        tau *= static_cast<double>(dim());
      }
      time += schedule_.marginal_weight(k) * tau;
      out.push_back(Phase{schedule_.phase_start(k + 1),
                          loss_.phi2.is_kl() ? time : std::numeric_limits<double>::quiet_NaN()});
    }
    return out;
  }

  void save(torch::serialize::OutputArchive& archive) override {
    SemiDualMethod::save(archive);
    archive.write("sjko_phase", torch::tensor(phase_, torch::kInt64));
    write_state(archive, "sjko_reference", *reference_);
  }

  void load(torch::serialize::InputArchive& archive) override {
    SemiDualMethod::load(archive);
    torch::Tensor phase;
    archive.read("sjko_phase", phase);
    read_state(archive, "sjko_reference", *reference_);
    for (auto& p : reference_->parameters()) {
      p.requires_grad_(false);
    }
    phase_ = phase.item<int64_t>();
    if (phase_ >= 0) {
      configure_phase(phase_);
    }
  }

 protected:
  void begin_step(int64_t step) override {
    const int64_t k = schedule_.phase_of(step);
    if (k == phase_) {
      return;
    }
    if (k > 0) {
      copy_weights(*reference_, generator());  // the previous phase's map, frozen
    }
    configure_phase(k);
    phase_ = k;
  }

  // T_old(x, z) with the z of T(x, z): (T_old, T)(x, z) is a coupling of mu_k and T's law that
  // T can make optimal (T = OT map o T_old), so the cost is the JKO step's W2. A fresh z' (the
  // reference code) couples through x alone: its optimum pulls T(x, .) towards E_z T_old(x, z),
  // between the modes that T_old(x, .) reaches.
  torch::Tensor cost_reference(const torch::Tensor& x, const torch::Tensor& z,
                               at::Generator& noise) override {
    if (phase_ == 0) {
      return x;  // T_old = identity: phase 0 is fixed-source UOTM
    }
    torch::NoGradGuard no_grad;
    const auto latent =
        schedule_.shared_latent
            ? z
            : torch::randn({x.size(0), reference_->latent_dim()}, noise).to(device());
    return reference_->forward(x, latent).to(torch::kFloat32);  // float32 under bf16 autocast too
  }

 private:
  void configure_phase(int64_t k) {
    set_cost(cost_scale_ / (2.0 * schedule_.jko_step_size(k)));
    loss_.phi2 = Phi(phi2_, schedule_.marginal_weight(k));
    instance_noise_ = schedule_.instance_noise / static_cast<double>(k + 1);
  }

  SjkoSchedule schedule_;
  std::string phi2_;
  double cost_scale_;
  CostReduction reduction_;
  std::shared_ptr<GeneratorNet> reference_;
  int64_t phase_ = -1;  // phase of the last step taken
};

Json sjko_defaults() {
  Json defaults = SemiDualOptions().to_json();
  defaults.update(SjkoOptions().to_json());
  // Each JKO step is a fixed-source problem; the run's length comes from the phases.
  defaults.merge_patch(Json{{"loss", {{"phi1", "linear"}}}, {"train", {{"steps", 0}}}});
  return defaults;
}

}  // namespace

SjkoOptions SjkoOptions::from_json(const Json& c) {
  SjkoOptions o;
  o.n_phases(positive_int(c, "sjko.n_phases"))
      .init_jko_step_size(positive_number(c, "sjko.init_jko_step_size"))
      .jko_step_size(positive_number(c, "sjko.jko_step_size"))
      .init_iterations(positive_int(c, "sjko.init_iterations"))
      .iterations(positive_int(c, "sjko.iterations"))
      .instance_noise(get<double>(c, "sjko.instance_noise"))
      .reference_latent(get<std::string>(c, "sjko.reference_latent"))
      .marginal_weights(get<std::vector<double>>(c, "sjko.marginal_weights"));
  if (!(o.instance_noise() >= 0)) {
    throw ConfigError("config key 'sjko.instance_noise' must be >= 0, got " +
                      std::to_string(o.instance_noise()));
  }
  if (o.reference_latent() != "shared" && o.reference_latent() != "fresh") {
    throw ConfigError("unknown sjko.reference_latent '" + o.reference_latent() +
                      "' (known: shared, fresh)");
  }
  if (static_cast<int64_t>(o.marginal_weights().size()) > o.n_phases()) {
    throw ConfigError("config key 'sjko.marginal_weights' has " +
                      std::to_string(o.marginal_weights().size()) + " values for " +
                      std::to_string(o.n_phases()) + " phases");
  }
  for (double w : o.marginal_weights()) {
    if (!(w > 0)) {
      throw ConfigError("config key 'sjko.marginal_weights' must hold numbers > 0, got " +
                        std::to_string(w));
    }
  }
  return o;
}

Json SjkoOptions::to_json() const {
  return Json{{"sjko",
               {{"n_phases", n_phases()},
                {"init_jko_step_size", init_jko_step_size()},
                {"jko_step_size", jko_step_size()},
                {"init_iterations", init_iterations()},
                {"iterations", iterations()},
                {"instance_noise", instance_noise()},
                {"reference_latent", reference_latent()},
                {"marginal_weights", marginal_weights()}}}};
}

void register_sjko(MethodRegistry& registry) {
  registry.add("sjko",
               "S-JKO: JKO steps as fixed-source UOT problems, warm-started across phases "
               "(sjko.n_phases, sjko.jko_step_size)",
               [] {
                 MethodEntry entry{[](const MethodContext& ctx) -> std::unique_ptr<Method> {
                                     return std::make_unique<Sjko>(ctx);
                                   },
                                   sjko_defaults};
                 entry.jko_steps_key = "sjko.n_phases";
                 return entry;
               });
}

}  // namespace uotflow
