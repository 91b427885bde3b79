// Networks: the generator T(x, z) and the potential v(y), picked by name from the config.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include <map>
#include <memory>
#include <string>

#include "uotflow/core/config.h"
#include "uotflow/core/registry.h"
#include "uotflow/nets/fused_chain.h"

namespace uotflow {

/// A generator ("transport map") T(x, z): x: [B, D] source points, z: [B, nz] noise -> [B, D].
class GeneratorNet : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& z) = 0;
  /// nz, the dimension of the auxiliary noise (0 = deterministic map).
  virtual int64_t latent_dim() const = 0;
};

/// A scalar potential v(y): [B, D] -> [B].
class PotentialNet : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& y) = 0;
  /// The net as a Linear/SiLU chain, for the explicit R1 pass (chain_value_and_penalty), or
  /// nullptr when it is not one (the generic double backward is used then).
  virtual const ChainPlan* chain() const {
    return nullptr;
  }
};

/// Fully connected net: Linear(in, width), SiLU, ..., Linear(width, out) with `depth` hidden
/// layers.
torch::nn::Sequential make_mlp(int64_t in, int64_t width, int64_t depth, int64_t out);

/// The reference toy trunk ResNet_FC(in, width, blocks): Linear(in, width), then `blocks` residual
/// blocks h = (h + [Linear(width, width), SiLU] x 3 (h)) / sqrt(2).
class ResNetFCImpl : public torch::nn::Module {
 public:
  ResNetFCImpl(int64_t in, int64_t width, int64_t blocks);
  /// x: [B, in] -> [B, width]
  torch::Tensor forward(const torch::Tensor& x);
  /// Appends the input layer and the residual blocks to `plan`.
  void describe(ChainPlan& plan) const;

 private:
  torch::nn::Linear input_{nullptr};
  std::vector<torch::nn::Sequential> blocks_;
};
TORCH_MODULE(ResNetFC);

/// Network sections of a config: {"net": "resnet_fc", "width": 128, "depth": 3, "nz": 2}.
/// depth = residual blocks for resnet_fc, hidden layers for mlp. The potential ignores nz.
Json default_generator_section();
Json default_potential_section();

using GeneratorRegistry = Registry<std::shared_ptr<GeneratorNet>(int64_t dim, const Json& section)>;
using PotentialRegistry = Registry<std::shared_ptr<PotentialNet>(int64_t dim, const Json& section)>;
GeneratorRegistry& generator_registry();
PotentialRegistry& potential_registry();

/// Builds the nets a section describes for data of dimension `dim`.
std::shared_ptr<GeneratorNet> make_generator(int64_t dim, const Json& section);
std::shared_ptr<PotentialNet> make_potential(int64_t dim, const Json& section);

/// The named parameters and buffers of `module` as CPU copies, and back (a ConfigError names a
/// missing tensor or a shape mismatch; `group` names the set of weights in messages).
std::map<std::string, torch::Tensor> named_tensors(const torch::nn::Module& module);
void load_named_tensors(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& in,
                        const std::string& group);

/// Number of scalar parameters.
int64_t count_parameters(const torch::nn::Module& module);

}  // namespace uotflow
