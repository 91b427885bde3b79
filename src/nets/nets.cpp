// Toy networks of the references (ResNet_FC trunk) and plain MLPs, behind name registries.
#include "uotflow/nets/nets.h"

#include <torch/torch.h>

#include <cmath>

#include "nets/section.h"
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

// Keys that earlier versions wrote into every generator / potential section, whatever the net.
const std::vector<std::string> kLegacyGeneratorKeys = {"width",
                                                       "depth",
                                                       "nz",
                                                       "image_shape",
                                                       "nf",
                                                       "ch_mult",
                                                       "num_res_blocks",
                                                       "attn_resolutions",
                                                       "dropout",
                                                       "z_emb_dim",
                                                       "n_mlp",
                                                       "resblock",
                                                       "progressive_input",
                                                       "skip_rescale",
                                                       "centered"};
const std::vector<std::string> kLegacyPotentialKeys = {"width", "depth",   "image_shape",
                                                       "nf",    "ch_mult", "stddev_group"};

}  // namespace

ToyNetOptions ToyNetOptions::from_json(const Json& section, bool generator) {
  ToyNetOptions o;
  o.width(read_or(section, "width", o.width()))
      .depth(read_or(section, "depth", o.depth()))
      .nz(generator ? read_or(section, "nz", o.nz()) : 0);
  check_positive(section, "width", o.width());
  check_positive(section, "depth", o.depth());
  check_positive(section, "nz", o.nz(), 0);
  // A lower bound of the weights (a residual block holds 3 width x width layers) with their
  // gradients and optimiser states, before any module is built.
  const double width = static_cast<double>(o.width());
  check_fits_in_memory(
      "network '" + section.value("net", std::string("?")) +
          (generator ? "': width, depth and nz" : "': width and depth"),
      4.0 * sizeof(float) * width * (width * static_cast<double>(o.depth()) + o.nz()));
  return o;
}

Json ToyNetOptions::to_json(bool generator) const {
  Json out{{"width", width()}, {"depth", depth()}};
  if (generator) {
    out["nz"] = nz();
  }
  return out;
}

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

GeneratorRegistry& generator_registry() {
  static GeneratorRegistry registry = [] {
    GeneratorRegistry r("generator network");
    const Json toy = ToyNetOptions().to_json(true);
    r.add(
        "resnet_fc", "reference toy generator: ResNet_FC(x) + MLP(z) -> Linear, SiLU, Linear",
        [](int64_t dim, const Json& s) -> std::shared_ptr<GeneratorNet> {
          const auto o = ToyNetOptions::from_json(s, true);
          return std::make_shared<ResNetFCGenerator>(dim, o.width(), o.depth(), o.nz());
        },
        toy);
    r.add(
        "mlp", "MLP on [x, z] with SiLU activations",
        [](int64_t dim, const Json& s) -> std::shared_ptr<GeneratorNet> {
          const auto o = ToyNetOptions::from_json(s, true);
          return std::make_shared<MlpGenerator>(dim, o.width(), o.depth(), o.nz());
        },
        toy);
    add_image_generators(r);
    return r;
  }();
  return registry;
}

PotentialRegistry& potential_registry() {
  static PotentialRegistry registry = [] {
    PotentialRegistry r("potential network");
    const Json toy = ToyNetOptions().to_json(false);
    r.add(
        "resnet_fc", "reference toy potential: ResNet_FC(y) -> Linear, SiLU, Linear(1)",
        [](int64_t dim, const Json& s) -> std::shared_ptr<PotentialNet> {
          const auto o = ToyNetOptions::from_json(s, false);
          return std::make_shared<ResNetFCPotential>(dim, o.width(), o.depth());
        },
        toy);
    r.add(
        "mlp", "MLP with SiLU activations and a scalar output",
        [](int64_t dim, const Json& s) -> std::shared_ptr<PotentialNet> {
          const auto o = ToyNetOptions::from_json(s, false);
          return std::make_shared<MlpPotential>(dim, o.width(), o.depth());
        },
        toy);
    r.add(
        "icnn",
        "input-convex net: psi convex in y (U >= 0, celu/softplus, skips from the input, a "
        "convex quadratic), grad psi = identity at the start",
        [](int64_t dim, const Json& s) -> std::shared_ptr<PotentialNet> {
          return std::make_shared<Icnn>(dim, IcnnOptions::from_json(s));
        },
        IcnnOptions().to_json());
    add_image_potentials(r);
    return r;
  }();
  return registry;
}

Json default_net_section(NetRole role, const std::string& net) {
  const auto& defaults = role == NetRole::generator ? generator_registry().at(net).defaults
                                                    : potential_registry().at(net).defaults;
  Json section{{"net", net}};
  section.update(defaults);
  return section;
}

Json default_generator_section(const std::string& net) {
  return default_net_section(NetRole::generator, net);
}

Json default_potential_section(const std::string& net) {
  return default_net_section(NetRole::potential, net);
}

std::vector<std::string> drop_keys_of_other_nets(Json& section, NetRole role) {
  std::vector<std::string> dropped;
  if (!section.is_object() || !section.contains("net") || !section["net"].is_string()) {
    return dropped;
  }
  const auto net = section["net"].get<std::string>();
  const bool known = role == NetRole::generator ? generator_registry().contains(net)
                                                : potential_registry().contains(net);
  if (!known) {
    return dropped;
  }
  const Json own = default_net_section(role, net);
  for (const auto& key : role == NetRole::generator ? kLegacyGeneratorKeys : kLegacyPotentialKeys) {
    if (section.contains(key) && !own.contains(key)) {
      section.erase(key);
      dropped.push_back(key);
    }
  }
  return dropped;
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
