// The optimiser registry, and mirror descent on the simplex.
#include "uotflow/optim/optimizer.h"

#include <ATen/Parallel.h>
#include <torch/optim/sgd.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>

namespace uotflow {
namespace {

// The loss of an optimiser's closure, with gradients on (undefined without a closure).
torch::Tensor evaluate(const torch::optim::Optimizer::LossClosure& closure) {
  if (closure == nullptr) {
    return {};
  }
  torch::AutoGradMode enable_grad(true);
  return closure();
}

struct MirrorDescentOptions : torch::optim::OptimizerCloneableOptions<MirrorDescentOptions> {
  explicit MirrorDescentOptions(double lr) : lr_(lr) {}
  TORCH_ARG(double, lr);
  double get_lr() const override {
    return lr();
  }
  void set_lr(const double lr) override {
    this->lr(lr);
  }
};

// Mirror descent with the entropy as mirror map (exponentiated gradient): each parameter tensor is
// one probability vector, updated as p <- p exp(-lr grad) / sum(p exp(-lr grad)). It stays > 0 and
// sums to 1, and the step is well conditioned where plain SGD is not: the entropy's curvature 1/p_i
// is what the mirror map divides out. Stateless, so a checkpoint holds nothing for it.
class MirrorDescent : public torch::optim::Optimizer {
 public:
  MirrorDescent(std::vector<torch::Tensor> params, double lr)
      : Optimizer({torch::optim::OptimizerParamGroup(std::move(params))},
                  std::make_unique<MirrorDescentOptions>(lr)) {}

  torch::Tensor step(LossClosure closure = nullptr) override {
    torch::NoGradGuard no_grad;
    const auto loss = evaluate(closure);
    for (auto& group : param_groups_) {
      const double lr = static_cast<const MirrorDescentOptions&>(group.options()).lr();
      for (auto& p : group.params()) {
        if (!p.grad().defined()) {
          continue;
        }
        // In log space, shifted by the max, so that no exponential overflows.
        auto log_p = torch::log(p.clamp_min(std::numeric_limits<float>::min())) - lr * p.grad();
        p.copy_(torch::softmax(log_p.flatten(), 0).view_as(p));
      }
    }
    return loss;
  }
  void save(torch::serialize::OutputArchive&) const override {}
  void load(torch::serialize::InputArchive&) override {}
};

// What the fused pass covers: dense contiguous float32/float64 CPU tensors, no weight decay or
// amsgrad.
bool fusable(const std::vector<torch::optim::OptimizerParamGroup>& groups) {
  for (const auto& group : groups) {
    const auto& o = static_cast<const torch::optim::AdamOptions&>(group.options());
    if (o.weight_decay() != 0 || o.amsgrad()) {
      return false;
    }
    for (const auto& p : group.params()) {
      const auto& g = p.grad();
      if (g.defined() &&
          (!p.is_cpu() || g.is_sparse() || !p.is_contiguous() || !g.is_contiguous() ||
           g.scalar_type() != p.scalar_type() ||
           (p.scalar_type() != torch::kFloat && p.scalar_type() != torch::kDouble))) {
        return false;
      }
    }
  }
  return true;
}

// The key of a parameter in torch::optim's state map, as the generic step makes it: the address of
// its TensorImpl, printed (LibTorch 1.x: std::string keys) or as it is (2.x: void* keys).
template <typename Key>
Key state_key(const torch::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream key;
    key << p.unsafeGetTensorImpl();
    return key.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

}  // namespace

// The generic step's arithmetic, element by element, in the parameter's precision:
// m = b1 m + (1 - b1) g, s = b2 s + (1 - b2) g^2, p -= lr / bc1 * m / (sqrt(s) / sqrt(bc2) + eps).
torch::Tensor FusedAdam::step(LossClosure closure) {
  if (!fusable(param_groups_)) {
    return Adam::step(std::move(closure));
  }
  torch::NoGradGuard no_grad;
  const auto loss = evaluate(closure);
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const torch::optim::AdamOptions&>(group.options());
    const double beta1 = std::get<0>(o.betas());
    const double beta2 = std::get<1>(o.betas());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) {
        continue;
      }
      // The generic step's key and state, so that checkpoints and the two steps interchange.
      const auto key = state_key<std::decay_t<decltype(state_)>::key_type>(p);
      auto it = state_.find(key);
      if (it == state_.end()) {
        auto fresh = std::make_unique<torch::optim::AdamParamState>();
        fresh->step(0);
        fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        it = state_.emplace(key, std::move(fresh)).first;
      }
      auto& state = static_cast<torch::optim::AdamParamState&>(*it->second);
      state.step(state.step() + 1);
      const double bc1 = 1 - std::pow(beta1, static_cast<double>(state.step()));
      const double bc2 = 1 - std::pow(beta2, static_cast<double>(state.step()));
      auto m = state.exp_avg();
      auto s = state.exp_avg_sq();
      TORCH_CHECK(m.is_contiguous() && s.is_contiguous(), "FusedAdam: non-contiguous state");
      const auto& grad = p.grad();
      AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "fused_adam", [&] {
        const auto b1 = static_cast<scalar_t>(beta1);
        const auto b2 = static_cast<scalar_t>(beta2);
        const auto one_minus_b1 = static_cast<scalar_t>(1 - beta1);
        const auto one_minus_b2 = static_cast<scalar_t>(1 - beta2);
        const auto root_bc2 = static_cast<scalar_t>(std::sqrt(bc2));
        const auto eps = static_cast<scalar_t>(o.eps());
        const auto step_size = static_cast<scalar_t>(o.lr() / bc1);
        scalar_t* pp = p.data_ptr<scalar_t>();
        const scalar_t* gp = grad.data_ptr<scalar_t>();
        scalar_t* mp = m.data_ptr<scalar_t>();
        scalar_t* sp = s.data_ptr<scalar_t>();
        at::parallel_for(0, p.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
          for (int64_t k = begin; k < end; ++k) {
            const scalar_t g = gp[k];
            const scalar_t mk = mp[k] * b1 + one_minus_b1 * g;
            const scalar_t sk = sp[k] * b2 + one_minus_b2 * g * g;
            mp[k] = mk;
            sp[k] = sk;
            pp[k] -= step_size * (mk / (std::sqrt(sk) / root_bc2 + eps));
          }
        });
      });
    }
  }
  return loss;
}

OptimizerRegistry& optimizer_registry() {
  static OptimizerRegistry registry = [] {
    OptimizerRegistry r("optimizer");
    r.add("adam", "Adam (lr, beta1, beta2)",
          [](std::vector<torch::Tensor> params,
             const OptimizerSettings& s) -> std::unique_ptr<torch::optim::Optimizer> {
            return std::make_unique<FusedAdam>(
                std::move(params), torch::optim::AdamOptions(s.lr).betas({s.beta1, s.beta2}));
          });
    r.add("sgd", "SGD with momentum (lr, momentum)",
          [](std::vector<torch::Tensor> params,
             const OptimizerSettings& s) -> std::unique_ptr<torch::optim::Optimizer> {
            return std::make_unique<torch::optim::SGD>(
                std::move(params), torch::optim::SGDOptions(s.lr).momentum(s.momentum));
          });
    r.add("mirror",
          "mirror descent on the simplex (exponentiated gradient, lr): each tensor is one "
          "probability vector",
          [](std::vector<torch::Tensor> params,
             const OptimizerSettings& s) -> std::unique_ptr<torch::optim::Optimizer> {
            return std::make_unique<MirrorDescent>(std::move(params), s.lr);
          });
    return r;
  }();
  return registry;
}

}  // namespace uotflow
