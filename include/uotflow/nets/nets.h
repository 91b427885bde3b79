// Networks: the generator T(x, z) and the potential v(y), picked by name from the config.
#pragma once

#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

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

/// The keys of the toy nets (resnet_fc, mlp).
struct ToyNetOptions {
  TORCH_ARG(int64_t, width) = 128;  ///< hidden width
  TORCH_ARG(int64_t, depth) = 3;    ///< residual blocks (resnet_fc) or hidden layers (mlp)
  TORCH_ARG(int64_t, nz) = 2;       ///< generator noise dimension (0 = a deterministic map T(x))

 public:  // TORCH_ARG leaves the struct in private access
  /// Reads a section (absent keys keep their defaults; the potential has no nz) and checks it.
  static ToyNetOptions from_json(const Json& section, bool generator);
  Json to_json(bool generator) const;
};

using GeneratorRegistry = Registry<std::shared_ptr<GeneratorNet>(int64_t dim, const Json& section)>;
using PotentialRegistry = Registry<std::shared_ptr<PotentialNet>(int64_t dim, const Json& section)>;
GeneratorRegistry& generator_registry();
PotentialRegistry& potential_registry();

/// The config sections a network fills: "generator" (T(x, z)) and "potential" (v(y)).
enum class NetRole { generator, potential };

/// The config section of a net: {"net": net} and every key the net reads with its default, as its
/// options struct declares it (e.g. resnet_fc: width 128, depth 3, nz 2; dcgan: width 64, nz
/// 100). An unknown net is a ConfigError listing the known ones.
Json default_net_section(NetRole role, const std::string& net);
Json default_generator_section(const std::string& net = "resnet_fc");
Json default_potential_section(const std::string& net = "resnet_fc");

/// Configs of earlier versions held every net's keys in each section; this drops those that the
/// section's own net does not read and returns their names (nothing when the net is unknown).
std::vector<std::string> drop_keys_of_other_nets(Json& section, NetRole role);

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
