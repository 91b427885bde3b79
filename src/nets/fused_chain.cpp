// The explicit passes of a Linear/SiLU chain: forward, grad_y v, and the weight gradients of
// v and of the R1 term without autograd's double backward (docs/methods/uotm.md, potential step).
//
// Notation, per layer i: x_i its input, s_i = x_i W_i^T + b_i, u_i = silu(s_i) (or s_i), and
// d1_i = silu'(s_i), d2_i = silu''(s_i). The gradient chain runs from the output back to y:
// gu_i = d v / d u_i, gs_i = gu_i * d1_i, and grad_y v = g at the input. The penalty's adjoint runs
// forward again: gbar_i = d p / d gu_i, giving weight terms gs_i^T gbar and sources
// sbar_i = gsbar_i * gu_i * d2_i at each pre-activation, which the ordinary backward then carries
// together with d L / d v.
#include "uotflow/nets/fused_chain.h"

#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/nn/modules/activation.h>
#include <torch/torch.h>

#include <cmath>

namespace uotflow {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

const double kResidualScale = ChainPlan::kResidualScale;
const int64_t kGrain = 1 << 14;

struct SiluParts {
  torch::Tensor u, d1, d2;  // d2 undefined unless asked for
};

// silu(s), silu'(s) and (with second) silu''(s) from one sigmoid:
// silu' = sig (1 + s (1 - sig)), silu'' = sig (1 - sig) (2 + s (1 - 2 sig)).
SiluParts silu_parts(const torch::Tensor& s, bool second) {
  auto sig = torch::sigmoid(s);
  if (!s.is_cpu()) {
    auto one_minus = 1 - sig;
    SiluParts out{s * sig, sig * (1 + s * one_minus), {}};
    if (second) {
      out.d2 = sig * one_minus * (2 + s * (1 - 2 * sig));
    }
    return out;
  }
  auto sc = s.contiguous();
  SiluParts out{torch::empty_like(sc), torch::empty_like(sc), {}};
  if (second) {
    out.d2 = sig;  // overwritten in place, element by element
  }
  AT_DISPATCH_FLOATING_TYPES(sc.scalar_type(), "silu_parts", [&] {
    const scalar_t* sp = sc.data_ptr<scalar_t>();
    scalar_t* gp = sig.data_ptr<scalar_t>();
    scalar_t* up = out.u.data_ptr<scalar_t>();
    scalar_t* d1p = out.d1.data_ptr<scalar_t>();
    at::parallel_for(0, sc.numel(), kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        const scalar_t x = sp[k];
        const scalar_t g = gp[k];
        const scalar_t om = 1 - g;
        up[k] = x * g;
        d1p[k] = g * (1 + x * om);
        if (second) {
          gp[k] = g * om * (2 + x * (1 - 2 * g));
        }
      }
    });
  });
  return out;
}

// The adjoint of gs = gu * d1 at a SiLU layer: returns d p / d gu = gsbar * d1 and sets
// sbar = gsbar * gu * d2 (the source at the pre-activation).
torch::Tensor silu_adjoint(const torch::Tensor& gsbar, const torch::Tensor& gu,
                           const torch::Tensor& d1, const torch::Tensor& d2, torch::Tensor& sbar) {
  if (!gsbar.is_cpu()) {
    sbar = gsbar * gu * d2;
    return gsbar * d1;
  }
  auto a = gsbar.contiguous();
  auto guc = gu.contiguous();
  sbar = torch::empty_like(a);
  auto out = torch::empty_like(a);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "silu_adjoint", [&] {
    const scalar_t* ap = a.data_ptr<scalar_t>();
    const scalar_t* gup = guc.data_ptr<scalar_t>();
    const scalar_t* d1p = d1.data_ptr<scalar_t>();
    const scalar_t* d2p = d2.data_ptr<scalar_t>();
    scalar_t* sp = sbar.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, a.numel(), kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        sp[k] = ap[k] * gup[k] * d2p[k];
        op[k] = ap[k] * d1p[k];
      }
    });
  });
  return out;
}

// The plan's structure as integers (stage first/count/residual, then one SiLU flag per layer), so
// that the graph holds no pointer into the net.
std::vector<int64_t> encode(const ChainPlan& plan) {
  std::vector<int64_t> code{static_cast<int64_t>(plan.stages.size())};
  for (const auto& st : plan.stages) {
    code.insert(code.end(), {st.first, st.count, st.residual ? 1 : 0});
  }
  for (const auto& layer : plan.layers) {
    code.push_back(layer.silu ? 1 : 0);
  }
  return code;
}

struct Layout {
  std::vector<ChainPlan::Stage> stages;
  std::vector<bool> silu;
};

Layout decode(const std::vector<int64_t>& code) {
  Layout out;
  const int64_t n_stages = code[0];
  size_t k = 1;
  for (int64_t s = 0; s < n_stages; ++s, k += 3) {
    out.stages.push_back({code[k], code[k + 1], code[k + 2] != 0});
  }
  for (; k < code.size(); ++k) {
    out.silu.push_back(code[k] != 0);
  }
  return out;
}

torch::Tensor list_at(const c10::List<torch::Tensor>& list, int64_t i) {
  return list.get(static_cast<size_t>(i));
}

class ChainFunction : public torch::autograd::Function<ChainFunction> {
 public:
  // params: W_0, b_0, W_1, b_1, ... Returns {v} or {v, penalty}.
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& y,
                               std::vector<int64_t> code, bool penalty, torch::TensorList params) {
    const Layout lay = decode(code);
    const auto n = static_cast<int64_t>(lay.silu.size());
    auto weight = [&](int64_t i) { return params[2 * i]; };
    c10::List<torch::Tensor> xs, d1, d2, gu, gs;
    for (int64_t i = 0; i < n; ++i) {
      for (auto* l : {&xs, &d1, &d2, &gu, &gs}) {
        l->push_back(torch::Tensor());
      }
    }
    auto h = y;
    for (const auto& st : lay.stages) {
      const auto h_in = h;
      for (int64_t i = st.first; i < st.first + st.count; ++i) {
        xs.set(i, h);
        auto s = torch::addmm(params[2 * i + 1], h, weight(i).t());
        if (lay.silu[i]) {
          auto parts = silu_parts(s, penalty);
          d1.set(i, parts.d1);
          d2.set(i, parts.d2);
          h = parts.u;
        } else {
          h = s;
        }
      }
      if (st.residual) {
        h = (h_in + h).mul_(kResidualScale);
      }
    }
    TORCH_CHECK(h.dim() == 2 && h.size(1) == 1, "chain_value_and_penalty: the net's output is ",
                h.sizes(), ", not one value per row");
    variable_list out{h.squeeze(1)};
    torch::Tensor grad_y;
    if (penalty) {
      auto g = torch::ones_like(h);  // d v / d (output)
      for (auto st = lay.stages.rbegin(); st != lay.stages.rend(); ++st) {
        const auto g_out = g;
        if (st->residual) {
          g = g * kResidualScale;
        }
        for (int64_t i = st->first + st->count - 1; i >= st->first; --i) {
          gu.set(i, g);
          auto gsi = lay.silu[i] ? g * list_at(d1, i) : g;
          gs.set(i, gsi);
          g = gsi.mm(weight(i));
        }
        if (st->residual) {
          g.add_(g_out, kResidualScale);
        }
      }
      grad_y = g;
      out.push_back(g.pow(2).sum(1).mean());
    }
    ctx->saved_data["code"] = code;
    ctx->saved_data["penalty"] = penalty;
    ctx->saved_data["xs"] = xs;
    ctx->saved_data["d1"] = d1;
    ctx->saved_data["d2"] = d2;
    ctx->saved_data["gu"] = gu;
    ctx->saved_data["gs"] = gs;
    ctx->saved_data["grad_y"] = grad_y;
    ctx->save_for_backward(params.vec());
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Layout lay = decode(ctx->saved_data["code"].toIntVector());
    const bool penalty = ctx->saved_data["penalty"].toBool();
    const auto xs = ctx->saved_data["xs"].toTensorList();
    const auto d1 = ctx->saved_data["d1"].toTensorList();
    const auto d2 = ctx->saved_data["d2"].toTensorList();
    const auto params = ctx->get_saved_variables();
    const auto n = static_cast<int64_t>(lay.silu.size());
    auto weight = [&](int64_t i) { return params[2 * i]; };
    std::vector<torch::Tensor> sbar(n), wbar(n);

    // The penalty's adjoint, forward through the layers.
    if (penalty && grads.size() > 1 && grads[1].defined()) {
      const auto gu = ctx->saved_data["gu"].toTensorList();
      const auto gs = ctx->saved_data["gs"].toTensorList();
      auto grad_y = ctx->saved_data["grad_y"].toTensor();
      // p = mean_i |g_i|^2, so d p / d g = 2 g / B.
      auto gbar = grad_y * (grads[1] * (2.0 / static_cast<double>(grad_y.size(0))));
      for (const auto& st : lay.stages) {
        const auto g_in = gbar;
        for (int64_t i = st.first; i < st.first + st.count; ++i) {
          wbar[i] = list_at(gs, i).t().mm(gbar);
          auto gsbar = gbar.mm(weight(i).t());
          gbar = lay.silu[i]
                     ? silu_adjoint(gsbar, list_at(gu, i), list_at(d1, i), list_at(d2, i), sbar[i])
                     : gsbar;
        }
        if (st.residual) {
          gbar = (g_in + gbar).mul_(kResidualScale);
        }
      }
    }

    // The ordinary backward, with the adjoint's sources at the pre-activations.
    const auto& last = xs.get(static_cast<size_t>(n - 1));
    auto delta = grads[0].defined() ? grads[0].unsqueeze(1)
                                    : torch::zeros({last.size(0), 1}, last.options());
    variable_list out(3 + 2 * n);
    // Edge indices count the tensor inputs only: y is 0, W_i is 1 + 2 i and b_i 2 + 2 i; the
    // returned list counts every argument (y, code, penalty, then the parameters).
    const bool need_y = ctx->needs_input_grad(0);
    for (auto st = lay.stages.rbegin(); st != lay.stages.rend(); ++st) {
      const auto d_out = delta;
      if (st->residual) {
        delta = delta * kResidualScale;
      }
      for (int64_t i = st->first + st->count - 1; i >= st->first; --i) {
        torch::Tensor ds = delta;
        if (lay.silu[i]) {
          ds = sbar[i].defined() ? torch::addcmul(sbar[i], delta, list_at(d1, i))
                                 : delta * list_at(d1, i);
        }
        if (ctx->needs_input_grad(1 + 2 * i)) {
          const auto x = list_at(xs, i);
          out[3 + 2 * i] = wbar[i].defined() ? torch::addmm(wbar[i], ds.t(), x) : ds.t().mm(x);
        }
        if (ctx->needs_input_grad(2 + 2 * i)) {
          out[3 + 2 * i + 1] = ds.sum(0);
        }
        if (i == 0 && !need_y) {
          break;  // nothing below the first layer is needed
        }
        delta = ds.mm(weight(i));
      }
      if (st->residual && (st->first > 0 || need_y)) {
        delta.add_(d_out, kResidualScale);
      }
    }
    if (need_y) {
      out[0] = delta;
    }
    return out;
  }
};

}  // namespace

void ChainPlan::add_linear(const torch::nn::Linear& linear, bool silu) {
  layers.push_back({linear, silu});
  stages.push_back({static_cast<int64_t>(layers.size()) - 1, 1, false});
}

void ChainPlan::add_sequential(const torch::nn::Sequential& seq) {
  for (const auto& module : seq->children()) {
    if (auto linear = std::dynamic_pointer_cast<torch::nn::LinearImpl>(module)) {
      add_linear(torch::nn::Linear(linear), false);
    } else if (std::dynamic_pointer_cast<torch::nn::SiLUImpl>(module)) {
      TORCH_CHECK(!layers.empty() && !layers.back().silu, "ChainPlan: SiLU must follow a Linear");
      layers.back().silu = true;
    } else {
      TORCH_CHECK(false, "ChainPlan: only Linear and SiLU layers, got ", module->name());
    }
  }
}

void ChainPlan::add_residual(const torch::nn::Sequential& block) {
  const auto first = static_cast<int64_t>(layers.size());
  ChainPlan inner;
  inner.add_sequential(block);
  for (auto& layer : inner.layers) {
    layers.push_back(layer);
  }
  stages.push_back({first, static_cast<int64_t>(inner.layers.size()), true});
}

std::vector<torch::Tensor> ChainPlan::parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& layer : layers) {
    out.push_back(layer.linear->weight);
    out.push_back(layer.linear->bias);
  }
  return out;
}

std::pair<torch::Tensor, torch::Tensor> chain_value_and_penalty(const ChainPlan& plan,
                                                                const torch::Tensor& y,
                                                                bool penalty) {
  TORCH_CHECK(!plan.layers.empty(), "chain_value_and_penalty: empty plan");
  const auto params = plan.parameters();
  // As a TensorList, so that autograd sees each weight as an input (a std::vector would not be).
  auto out = ChainFunction::apply(y, encode(plan), penalty, torch::TensorList(params));
  return {out[0], penalty ? out[1] : torch::Tensor()};
}

}  // namespace uotflow
