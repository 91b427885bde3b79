// Toy networks of the references (ResNet_FC trunk) and plain MLPs, behind name registries.
#include "uotflow/nets/nets.h"

#include <torch/torch.h>

#include <cmath>

#include "uotflow/core/device.h"
#include "uotflow/core/error.h"
#include "uotflow/nets/icnn.h"
#include "uotflow/nets/image_nets.h"

namespace uotflow {
namespace {

void check_positive(const Json& section, const char* key, int64_t value, int64_t min = 1) {
  if (value < min) {
    throw ConfigError(std::string("network '") + section.value("net", std::string("?")) +
                      "': " + key + " must be >= " + std::to_string(min) + ", got " +
                      std::to_string(value));
  }
}

// Reference toy generator: ResNet_FC(x) + MLP(z), then Linear, SiLU, Linear back to data space.
class ResNetFCGenerator : public GeneratorNet {
 public:
  ResNetFCGenerator(int64_t dim, int64_t width, int64_t depth, int64_t nz) : nz_(nz) {
    trunk_ = register_module("trunk", ResNetFC(dim, width, depth));
    if (nz > 0) {
      z_embed_ = register_module("z_embed", make_mlp(nz, width, 1, width));
    }
    head_ = register_module("head", make_mlp(width, width, 1, dim));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& z) override {
    auto h = trunk_->forward(x);
    if (nz_ > 0) {
      h = h + z_embed_->forward(z);
    }
    return head_->forward(h);
  }
  int64_t latent_dim() const override {
    return nz_;
  }

 private:
  int64_t nz_;
  ResNetFC trunk_{nullptr};
  torch::nn::Sequential z_embed_{nullptr};
  torch::nn::Sequential head_{nullptr};
};

class ResNetFCPotential : public PotentialNet {
 public:
  ResNetFCPotential(int64_t dim, int64_t width, int64_t depth) {
    trunk_ = register_module("trunk", ResNetFC(dim, width, depth));
    head_ = register_module("head", make_mlp(width, width, 1, 1));
    trunk_->describe(plan_);
    plan_.add_sequential(head_);
  }
  torch::Tensor forward(const torch::Tensor& y) override {
    return head_->forward(trunk_->forward(y)).squeeze(-1);
  }
  const ChainPlan* chain() const override {
    return &plan_;
  }

 private:
  ChainPlan plan_;
  ResNetFC trunk_{nullptr};
  torch::nn::Sequential head_{nullptr};
};

// MLP on the concatenation [x, z].
class MlpGenerator : public GeneratorNet {
 public:
  MlpGenerator(int64_t dim, int64_t width, int64_t depth, int64_t nz) : nz_(nz) {
    net_ = register_module("net", make_mlp(dim + nz, width, depth, dim));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& z) override {
    return net_->forward(nz_ > 0 ? torch::cat({x, z}, 1) : x);
  }
  int64_t latent_dim() const override {
    return nz_;
  }

 private:
  int64_t nz_;
  torch::nn::Sequential net_{nullptr};
};

class MlpPotential : public PotentialNet {
 public:
  MlpPotential(int64_t dim, int64_t width, int64_t depth) {
    net_ = register_module("net", make_mlp(dim, width, depth, 1));
    plan_.add_sequential(net_);
  }
  torch::Tensor forward(const torch::Tensor& y) override {
    return net_->forward(y).squeeze(-1);
  }
  const ChainPlan* chain() const override {
    return &plan_;
  }

 private:
  ChainPlan plan_;
  torch::nn::Sequential net_{nullptr};
};

struct NetShape {
  int64_t width, depth, nz;
};

NetShape read_shape(const Json& section, bool generator) {
  NetShape s{get<int64_t>(section, "width"), get<int64_t>(section, "depth"),
             generator ? get<int64_t>(section, "nz") : 0};
  check_positive(section, "width", s.width);
  check_positive(section, "depth", s.depth);
  check_positive(section, "nz", s.nz, 0);
  // A lower bound of the weights (a residual block holds 3 width x width layers) with their
  // gradients and optimiser states, before any module is built.
  const double width = static_cast<double>(s.width);
  check_fits_in_memory("network '" + section.value("net", std::string("?")) + "': width and depth",
                       4.0 * sizeof(float) * width * (width * static_cast<double>(s.depth) + s.nz));
  return s;
}

}  // namespace

torch::nn::Sequential make_mlp(int64_t in, int64_t width, int64_t depth, int64_t out) {
  torch::nn::Sequential seq;
  int64_t prev = in;
  for (int64_t i = 0; i < depth; ++i) {
    seq->push_back(torch::nn::Linear(prev, width));
    seq->push_back(torch::nn::SiLU());
    prev = width;
  }
  seq->push_back(torch::nn::Linear(prev, out));
  return seq;
}

ResNetFCImpl::ResNetFCImpl(int64_t in, int64_t width, int64_t blocks) {
  input_ = register_module("input", torch::nn::Linear(in, width));
  for (int64_t b = 0; b < blocks; ++b) {
    torch::nn::Sequential block;
    for (int i = 0; i < 3; ++i) {
      block->push_back(torch::nn::Linear(width, width));
      block->push_back(torch::nn::SiLU());
    }
    blocks_.push_back(register_module("block" + std::to_string(b), block));
  }
}

void ResNetFCImpl::describe(ChainPlan& plan) const {
  plan.add_linear(input_, false);
  for (const auto& block : blocks_) {
    plan.add_residual(block);
  }
}

torch::Tensor ResNetFCImpl::forward(const torch::Tensor& x) {
  auto h = input_->forward(x);
  for (auto& block : blocks_) {
    h = (h + block->forward(h)) * ChainPlan::kResidualScale;
  }
  return h;
}

// The image nets' keys sit beside the toy nets' ones; each net reads only its own (docs/config.md).
Json default_generator_section() {
  return Json{{"net", "resnet_fc"},
              {"width", 128},
              {"depth", 3},
              {"nz", 2},
              {"image_shape", Json::array()},
              {"nf", 64},
              {"ch_mult", {1, 2, 2, 2}},
              {"num_res_blocks", 2},
              {"attn_resolutions", {16}},
              {"dropout", 0.0},
              {"z_emb_dim", 256},
              {"n_mlp", 3},
              {"resblock", "biggan"},
              {"progressive_input", "residual"},
              {"skip_rescale", true},
              {"centered", true}};
}

Json default_potential_section() {
  return Json{{"net", "resnet_fc"}, {"width", 128},
              {"depth", 3},         {"image_shape", Json::array()},
              {"nf", 64},           {"ch_mult", {2, 4, 8, 8}},
              {"stddev_group", 4}};
}

GeneratorRegistry& generator_registry() {
  static GeneratorRegistry registry = [] {
    GeneratorRegistry r("generator network");
    r.add("resnet_fc", "reference toy generator: ResNet_FC(x) + MLP(z) -> Linear, SiLU, Linear",
          [](int64_t dim, const Json& s) -> std::shared_ptr<GeneratorNet> {
            auto shape = read_shape(s, true);
            return std::make_shared<ResNetFCGenerator>(dim, shape.width, shape.depth, shape.nz);
          });
    r.add("mlp", "MLP on [x, z] with SiLU activations",
          [](int64_t dim, const Json& s) -> std::shared_ptr<GeneratorNet> {
            auto shape = read_shape(s, true);
            return std::make_shared<MlpGenerator>(dim, shape.width, shape.depth, shape.nz);
          });
    add_image_generators(r);
    return r;
  }();
  return registry;
}

PotentialRegistry& potential_registry() {
  static PotentialRegistry registry = [] {
    PotentialRegistry r("potential network");
    r.add("resnet_fc", "reference toy potential: ResNet_FC(y) -> Linear, SiLU, Linear(1)",
          [](int64_t dim, const Json& s) -> std::shared_ptr<PotentialNet> {
            auto shape = read_shape(s, false);
            return std::make_shared<ResNetFCPotential>(dim, shape.width, shape.depth);
          });
    r.add("mlp", "MLP with SiLU activations and a scalar output",
          [](int64_t dim, const Json& s) -> std::shared_ptr<PotentialNet> {
            auto shape = read_shape(s, false);
            return std::make_shared<MlpPotential>(dim, shape.width, shape.depth);
          });
    r.add("icnn",
          "input-convex net: psi convex in y (U >= 0, celu/softplus, skips from the input, a "
          "convex quadratic), grad psi = identity at the start",
          [](int64_t dim, const Json& s) -> std::shared_ptr<PotentialNet> {
            return std::make_shared<Icnn>(dim, IcnnOptions::from_json(s));
          });
    add_image_potentials(r);
    return r;
  }();
  return registry;
}

std::shared_ptr<GeneratorNet> make_generator(int64_t dim, const Json& section) {
  return generator_registry().create(get<std::string>(section, "net"), dim, section);
}

std::shared_ptr<PotentialNet> make_potential(int64_t dim, const Json& section) {
  return potential_registry().create(get<std::string>(section, "net"), dim, section);
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) {
    n += p.numel();
  }
  return n;
}

std::map<std::string, torch::Tensor> named_tensors(const torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : module.named_parameters()) {
    out[item.key()] = item.value().detach().cpu().clone();
  }
  for (const auto& item : module.named_buffers()) {
    out[item.key()] = item.value().detach().cpu().clone();
  }
  return out;
}

void load_named_tensors(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& in,
                        const std::string& group) {
  torch::NoGradGuard no_grad;
  auto assign = [&](const std::string& name, torch::Tensor& slot) {
    auto it = in.find(name);
    if (it == in.end()) {
      throw ConfigError("weights '" + group + "' lack tensor '" + name + "'");
    }
    if (it->second.sizes() != slot.sizes()) {
      throw ConfigError("weights '" + group + "': tensor '" + name + "' has shape " +
                        c10::str(it->second.sizes()) + ", the network expects " +
                        c10::str(slot.sizes()));
    }
    slot.copy_(it->second);
  };
  for (auto& item : module.named_parameters()) {
    assign(item.key(), item.value());
  }
  for (auto& item : module.named_buffers()) {
    assign(item.key(), item.value());
  }
}

}  // namespace uotflow
