// Particles, grid weights, generator MLP and RealNVP as parametrizations of a flow's measure.
#include "uotflow/flow/parametrization.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>

#include "uotflow/core/device.h"
#include "uotflow/core/error.h"
#include "uotflow/io/archive.h"
#include "uotflow/nets/image_nets.h"
#include "uotflow/nets/nets.h"
#include "uotflow/nets/realnvp.h"

namespace uotflow {
namespace {

// rho_0 = N(mean, std^2 I): the problem's source, which nets and grids need to be an isotropic
// Gaussian.
struct Start {
  torch::Tensor mean;  // [D] float32
  double std = 1.0;
};

Start read_start(const Dataset& source, const std::string& kind) {
  const auto g = source.gaussian();
  const int64_t dim = source.dim();
  if (g.mean.defined()) {
    const double var = g.covariance[0][0].item<double>();
    if (torch::allclose(g.covariance, var * torch::eye(dim, torch::kDouble))) {
      return Start{g.mean.to(torch::kFloat32), std::sqrt(var)};
    }
  }
  throw ConfigError("parametrization '" + kind +
                    "' starts from an isotropic Gaussian source N(mean, std^2 I) (source.name = "
                    "gaussian with params mean, std); use particles for another source");
}

int64_t positive(const Json& section, const std::string& key) {
  const auto v = get<int64_t>(section, key);
  if (v < 1) {
    throw ConfigError("config key 'parametrization." + key + "' must be >= 1");
  }
  return v;
}

const torch::Tensor& weight(const std::map<std::string, torch::Tensor>& weights,
                            const std::string& name) {
  auto it = weights.find(name);
  if (it == weights.end()) {
    throw ConfigError("the weights lack the tensor '" + name + "'");
  }
  return it->second;
}

torch::Tensor detached_cpu(const torch::Tensor& x) {
  return x.detach().to(torch::kCPU, torch::kFloat32);
}

// A fixed set of N particles moved by (scaled) gradient steps; entropy by a KDE plug-in.
class Particles : public Parametrization {
 public:
  Particles(const Json& section, const Dataset& source, torch::Device device) : dim_(source.dim()) {
    const int64_t n = positive(section, "particles.n");
    // A lower bound: positions, the previous ones, gradients and the optimizer's state.
    check_fits_in_memory("parametrization.particles.n",
                         6.0 * static_cast<double>(n) * dim_ * sizeof(float));
    bandwidth_ = get<double>(section, "particles.kde_bandwidth");
    if (bandwidth_ < 0) {
      throw ConfigError("parametrization.particles.kde_bandwidth must be >= 0 (0 = Scott's rule)");
    }
    noise_ = get<double>(section, "particles.noise");
    if (!(noise_ >= 0.0 && std::isfinite(noise_))) {
      throw ConfigError("parametrization.particles.noise must be a finite number >= 0");
    }
    // The initial positions come from a fixed stream, so they are part of the config.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(get<uint64_t>(section, "particles.seed"));
    x_ = source.sample(n, gen).to(device).requires_grad_(true);
  }
  int64_t dim() const override {
    return dim_;
  }
  FlowBatch draw(int64_t, at::Generator&, bool with_entropy) override {
    FlowBatch b{x_};
    if (with_entropy) {
      b.neg_entropy = kde_neg_entropy(x_, bandwidth());
    }
    return b;
  }
  FlowBatch draw_previous(int64_t, at::Generator&) override {
    return FlowBatch{previous_};
  }
  void freeze() override {
    previous_ = x_.detach().clone();
  }
  std::vector<torch::Tensor> parameters() override {
    return {x_};
  }
  double gradient_scale() const override {
    return static_cast<double>(x_.size(0));
  }
  bool has_entropy() const override {
    return true;
  }
  void diffuse(double step, at::Generator& gen) override {
    if (noise_ > 0.0) {
      torch::NoGradGuard no_grad;
      x_.add_(torch::randn(x_.sizes(), gen).to(x_.device()), std::sqrt(2.0 * noise_ * step));
    }
  }
  FlowBatch sample(int64_t, at::Generator&) override {
    return FlowBatch{detached_cpu(x_)};
  }
  void save(torch::serialize::OutputArchive& archive) override {
    archive.write("particles", x_.detach());
    if (previous_.defined()) {
      archive.write("previous", previous_);
    }
  }
  void load(torch::serialize::InputArchive& archive) override {
    torch::Tensor x;
    archive.read("particles", x);
    import_weights({{"particles", x}});
    torch::Tensor previous;
    if (archive.try_read("previous", previous)) {
      previous_ = previous.to(x_.device());
    }
  }
  void import_weights(const std::map<std::string, torch::Tensor>& weights) override {
    const auto& x = weight(weights, "particles");
    if (x.sizes() != x_.sizes()) {
      throw ConfigError("particles have shape " + shape_text(x.sizes()) + ", the config asks for " +
                        shape_text(x_.sizes()));
    }
    torch::NoGradGuard no_grad;
    x_.copy_(x);
  }
  std::map<std::string, torch::Tensor> export_weights() override {
    return {{"particles", detached_cpu(x_)}};
  }
  std::string default_optimizer() const override {
    return "sgd";
  }

 private:
  double bandwidth() const {
    return bandwidth_ > 0 ? bandwidth_ : scott_bandwidth(x_.detach());
  }
  int64_t dim_;
  double bandwidth_ = 0.0;
  double noise_ = 0.0;  // lambda of the entropy by noise
  torch::Tensor x_, previous_;
};

// Weights on the cell centres of a G x G grid over [c - r, c + r]^2; the SW term uses the
// weighted 1-D OT path; entropy sum w log(w / cell area). Its default optimiser is mirror descent
// (multiplicative updates that stay on the simplex); project() is then a no-op, and keeps SGD or
// Adam steps on the simplex.
class Grid : public Parametrization {
 public:
  Grid(const Json& section, const Dataset& source, torch::Device device) {
    if (source.dim() != 2) {
      throw ConfigError("parametrization 'grid' is 2-D only; the flow has dim " +
                        std::to_string(source.dim()));
    }
    const Start start = read_start(source, "grid");
    const int64_t g = positive(section, "grid.size");
    // A lower bound: the g x g cell centres, the weights, their gradients and optimizer state.
    check_fits_in_memory("parametrization.grid.size",
                         6.0 * static_cast<double>(g) * static_cast<double>(g) * sizeof(float));
    const double radius = get<double>(section, "grid.radius");
    if (!(radius > 0)) {
      throw ConfigError("parametrization.grid.radius must be > 0");
    }
    const auto centre = get<std::vector<double>>(section, "grid.centre");
    if (centre.size() != 2) {
      throw ConfigError("parametrization.grid.centre must be a list of 2 numbers");
    }
    const double cell = 2 * radius / g;
    cell_area_ = cell * cell;
    auto ticks = torch::arange(g, torch::kFloat32) * cell + cell / 2 - radius;
    auto mesh = torch::meshgrid({ticks + centre[0], ticks + centre[1]}, "ij");
    points_ = torch::stack({mesh[0].reshape(-1), mesh[1].reshape(-1)}, 1).to(device);
    // The start density at the cell centres, normalised over the grid.
    auto log_w = -(points_.cpu() - start.mean).pow(2).sum(1) / (2 * start.std * start.std);
    w_ = torch::softmax(log_w, 0).to(device).requires_grad_(true);
  }
  int64_t dim() const override {
    return 2;
  }
  FlowBatch draw(int64_t, at::Generator&, bool with_entropy) override {
    FlowBatch b{points_, w_};
    if (with_entropy) {
      b.neg_entropy = (w_ * torch::log(w_.clamp_min(1e-30) / cell_area_)).sum();
    }
    return b;
  }
  FlowBatch draw_previous(int64_t, at::Generator&) override {
    return FlowBatch{points_, previous_};
  }
  void freeze() override {
    previous_ = w_.detach().clone();
  }
  std::vector<torch::Tensor> parameters() override {
    return {w_};
  }
  void project() override {
    torch::NoGradGuard no_grad;
    w_.copy_(project_to_simplex(w_));
  }
  bool has_entropy() const override {
    return true;
  }
  FlowBatch sample(int64_t n, at::Generator& gen) override {
    // Draws cell centres by weight, uniformly jittered inside the cell.
    auto w = detached_cpu(w_).to(torch::kDouble);
    auto idx = torch::multinomial(w, n, true, gen);
    const double cell = std::sqrt(cell_area_);
    auto x = points_.cpu().index_select(0, idx) + (torch::rand({n, 2}, gen) - 0.5) * cell;
    return FlowBatch{x};
  }
  void save(torch::serialize::OutputArchive& archive) override {
    archive.write("weights", w_.detach());
    if (previous_.defined()) {
      archive.write("previous", previous_);
    }
  }
  void load(torch::serialize::InputArchive& archive) override {
    torch::Tensor w;
    archive.read("weights", w);
    import_weights({{"weights", w}});
    torch::Tensor previous;
    if (archive.try_read("previous", previous)) {
      previous_ = previous.to(w_.device());
    }
  }
  void import_weights(const std::map<std::string, torch::Tensor>& weights) override {
    const auto& w = weight(weights, "weights");
    if (w.sizes() != w_.sizes()) {
      throw ConfigError("grid weights have shape " + shape_text(w.sizes()) +
                        ", the config asks for " + shape_text(w_.sizes()));
    }
    torch::NoGradGuard no_grad;
    w_.copy_(w);
  }
  std::map<std::string, torch::Tensor> export_weights() override {
    return {{"points", detached_cpu(points_)}, {"weights", detached_cpu(w_)}};
  }
  std::string default_optimizer() const override {
    return "mirror";
  }

 private:
  torch::Tensor points_, w_, previous_;
  double cell_area_ = 1.0;
};

// A net-based measure x = mean + std * g(z), z ~ N(0, I): common code of generator and RealNVP.
// `Net` is a module holder; g starts as (nearly) the identity so rho_0 = N(mean, std^2 I).
template <typename Net>
class NetMeasure : public Parametrization {
 public:
  NetMeasure(int64_t dim, const Start& start, torch::Device device, Net net, int64_t latent)
      : dim_(dim), latent_(latent), device_(device), net_(std::move(net)) {
    mean_ = start.mean.to(device);
    std_ = start.std;
    net_->to(device);
  }
  int64_t dim() const override {
    return dim_;
  }
  FlowBatch draw(int64_t n, at::Generator& gen, bool with_entropy) override {
    auto [x, neg_entropy] = push(net_, latent_sample(n, gen), with_entropy);
    FlowBatch b{x};
    b.neg_entropy = neg_entropy;
    return b;
  }
  FlowBatch draw_previous(int64_t n, at::Generator& gen) override {
    torch::NoGradGuard no_grad;
    return FlowBatch{push(previous_, latent_sample(n, gen), false).first};
  }
  void freeze() override {
    previous_ = Net(std::dynamic_pointer_cast<typename Net::ContainedType>(net_->clone(device_)));
    for (auto& p : previous_->parameters()) {
      p.set_requires_grad(false);
    }
  }
  std::vector<torch::Tensor> parameters() override {
    return net_->parameters();
  }
  FlowBatch sample(int64_t n, at::Generator& gen) override {
    torch::NoGradGuard no_grad;
    return FlowBatch{detached_cpu(push(net_, latent_sample(n, gen), false).first)};
  }
  void save(torch::serialize::OutputArchive& archive) override {
    write_state(archive, "net", *net_);
    if (previous_) {
      write_state(archive, "previous", *previous_);
    }
  }
  void load(torch::serialize::InputArchive& archive) override {
    read_state(archive, "net", *net_);
    net_->to(device_);
    freeze();  // a previous measure of the right shape, then its saved state when there is one
    if (try_read_state(archive, "previous", *previous_)) {
      previous_->to(device_);
      for (auto& p : previous_->parameters()) {
        p.set_requires_grad(false);
      }
    }
  }
  void import_weights(const std::map<std::string, torch::Tensor>& weights) override {
    load_named_tensors(*net_, weights, "model");
    net_->to(device_);
  }
  std::map<std::string, torch::Tensor> export_weights() override {
    std::map<std::string, torch::Tensor> out;
    for (const auto& item : net_->named_parameters()) {
      out[item.key()] = item.value().detach().cpu();
    }
    return out;
  }
  std::string default_optimizer() const override {
    return "adam";
  }

 protected:
  // z: [n, latent] -> (x [n, D], E log rho or undefined).
  virtual std::pair<torch::Tensor, torch::Tensor> push(Net& net, const torch::Tensor& z,
                                                       bool with_entropy) = 0;
  torch::Tensor latent_sample(int64_t n, at::Generator& gen) const {
    return torch::randn({n, latent_}, gen).to(device_);
  }

  int64_t dim_, latent_;
  torch::Device device_;
  Net net_, previous_{nullptr};
  torch::Tensor mean_;
  double std_ = 1.0;
};

// x = mean + std * (z[:, :D] + MLP(z)); the MLP's last layer starts at zero. No entropy.
class GeneratorMeasure : public NetMeasure<torch::nn::Sequential> {
 public:
  GeneratorMeasure(const Json& section, const Dataset& source, torch::Device device)
      : NetMeasure(source.dim(), read_start(source, "generator"), device,
                   build(section, source.dim()), latent_dim(section, source.dim())) {}
  bool has_entropy() const override {
    return false;
  }

 private:
  static int64_t latent_dim(const Json& section, int64_t dim) {
    const auto nz = get<int64_t>(section, "generator.nz");
    if (nz != 0 && nz < dim) {
      throw ConfigError("parametrization.generator.nz must be 0 (= dim) or >= dim (" +
                        std::to_string(dim) + ")");
    }
    return nz == 0 ? dim : nz;
  }
  static torch::nn::Sequential build(const Json& section, int64_t dim) {
    auto net = make_mlp(latent_dim(section, dim), positive(section, "generator.width"),
                        positive(section, "generator.depth"), dim);
    torch::NoGradGuard no_grad;
    auto last = net->ptr(net->size() - 1)->as<torch::nn::Linear>();
    last->weight.zero_();
    last->bias.zero_();
    return net;
  }
  std::pair<torch::Tensor, torch::Tensor> push(torch::nn::Sequential& net, const torch::Tensor& z,
                                               bool) override {
    return {mean_ + std_ * (z.slice(1, 0, dim_) + net->forward(z)), {}};
  }
};

// x = mean + std * f(z) with f a RealNVP: exact log-density by inversion, exact entropy.
class RealNVPMeasure : public NetMeasure<RealNVP> {
 public:
  RealNVPMeasure(const Json& section, const Dataset& source, torch::Device device)
      : NetMeasure(source.dim(), read_start(source, "realnvp"), device,
                   RealNVP(RealNVPOptions(source.dim())
                               .couplings(positive(section, "realnvp.couplings"))
                               .width(positive(section, "realnvp.width"))
                               .hidden_layers(get<int64_t>(section, "realnvp.hidden_layers"))),
                   source.dim()) {}
  bool has_entropy() const override {
    return true;
  }
  bool has_density() const override {
    return true;
  }
  torch::Tensor log_density(const torch::Tensor& x) override {
    torch::NoGradGuard no_grad;
    auto u = (x.to(device_, torch::kFloat32) - mean_) / std_;
    return (net_->log_prob(u) - dim_ * std::log(std_)).cpu();
  }

 private:
  std::pair<torch::Tensor, torch::Tensor> push(RealNVP& net, const torch::Tensor& z,
                                               bool with_entropy) override {
    auto [u, log_det] = net->forward(z);
    torch::Tensor neg_entropy;
    if (with_entropy) {
      neg_entropy = (standard_normal_log_prob(z) - log_det).mean() - dim_ * std::log(std_);
    }
    return {mean_ + std_ * u, neg_entropy};
  }
};

// x = G(z), G a DCGAN-style decoder of images (nets/), z ~ N(0, I_nz): rho_0 is the untrained
// decoder's image of N(0, I) (the source is not used). No entropy.
class ConvGeneratorMeasure : public NetMeasure<DcganDecoder> {
 public:
  ConvGeneratorMeasure(const Json& section, const FlowSpace& space, torch::Device device)
      : NetMeasure(space.dim, Start{torch::zeros({space.dim}), 1.0}, device,
                   DcganDecoder(options(section, space)), positive(section, "conv_generator.nz")) {}
  bool has_entropy() const override {
    return false;
  }

 private:
  static DcganOptions options(const Json& section, const FlowSpace& space) {
    if (space.image_shape.empty()) {
      throw ConfigError(
          "parametrization 'conv_generator' makes images, and this flow's points are not "
          "images (its functional has no image data set)");
    }
    return DcganOptions(space.image_shape)
        .width(positive(section, "conv_generator.width"))
        .nz(positive(section, "conv_generator.nz"));
  }
  std::pair<torch::Tensor, torch::Tensor> push(DcganDecoder& net, const torch::Tensor& z,
                                               bool) override {
    return {net->forward(z), {}};
  }
};

}  // namespace

torch::Tensor Parametrization::log_density(const torch::Tensor&) {
  throw ConfigError("this parametrization has no density");
}

ParametrizationRegistry& parametrization_registry() {
  static ParametrizationRegistry registry = [] {
    ParametrizationRegistry r("parametrization");
    r.add("particles", "N particles moved by SGD; entropy by a Gaussian KDE plug-in",
          [](const Json& s, const Dataset& source, const FlowSpace&, torch::Device dev) {
            return std::make_unique<Particles>(s, source, dev);
          });
    r.add("grid", "weights on a 2-D grid, mirror descent on the simplex; exact grid entropy",
          [](const Json& s, const Dataset& source, const FlowSpace&, torch::Device dev) {
            return std::make_unique<Grid>(s, source, dev);
          });
    r.add("generator", "MLP generator x = g(z); no entropy",
          [](const Json& s, const Dataset& source, const FlowSpace&, torch::Device dev) {
            return std::make_unique<GeneratorMeasure>(s, source, dev);
          });
    r.add("realnvp", "RealNVP normalizing flow; exact log-density and entropy",
          [](const Json& s, const Dataset& source, const FlowSpace&, torch::Device dev) {
            return std::make_unique<RealNVPMeasure>(s, source, dev);
          });
    r.add("conv_generator",
          "DCGAN-style convolutional decoder x = G(z) of images (ambient image flows); no "
          "entropy",
          [](const Json& s, const Dataset&, const FlowSpace& space, torch::Device dev) {
            return std::make_unique<ConvGeneratorMeasure>(s, space, dev);
          });
    return r;
  }();
  return registry;
}

Json default_parametrization_section() {
  const RealNVPOptions flow(0);  // the flow's defaults, declared by its options struct
  return Json{{"name", "realnvp"},
              {"particles", {{"n", 1000}, {"seed", 0}, {"kde_bandwidth", 0.0}, {"noise", 0.0}}},
              {"grid", {{"size", 50}, {"radius", 3.0}, {"centre", {0.0, 0.0}}}},
              {"generator", {{"width", 100}, {"depth", 3}, {"nz", 0}}},
              {"conv_generator", {{"width", 32}, {"nz", 32}}},
              {"realnvp",
               {{"couplings", flow.couplings()},
                {"width", flow.width()},
                {"hidden_layers", flow.hidden_layers()}}}};
}

std::unique_ptr<Parametrization> make_parametrization(const Json& section, const Dataset& source,
                                                      torch::Device device,
                                                      const std::vector<int64_t>& image_shape) {
  return parametrization_registry().create(get<std::string>(section, "name"), section, source,
                                           FlowSpace{source.dim(), image_shape}, device);
}

torch::Tensor project_to_simplex(const torch::Tensor& v) {
  // Sort descending, find the largest k with u_k > (sum_{i<=k} u_i - 1) / k, shift and clip.
  auto u = std::get<0>(v.sort(-1, true));
  auto css = u.cumsum(-1) - 1.0;
  auto k = torch::arange(1, v.size(-1) + 1, v.options());
  auto cond = (u - css / k) > 0;
  auto rho =
      (cond.to(torch::kLong) * torch::arange(1, v.size(-1) + 1, v.options().dtype(torch::kLong)))
          .amax(-1, true);
  auto theta = css.gather(-1, rho - 1) / rho.to(v.scalar_type());
  return (v - theta).clamp_min(0.0);
}

double scott_bandwidth(const torch::Tensor& x) {
  const double n = static_cast<double>(x.size(0));
  const double d = static_cast<double>(x.size(1));
  return x.std(0).mean().item<double>() * std::pow(n, -1.0 / (d + 4.0));
}

torch::Tensor kde_neg_entropy(const torch::Tensor& x, double bandwidth) {
  const int64_t n = x.size(0);
  const double d = static_cast<double>(x.size(1));
  TORCH_CHECK(n >= 1, "a KDE entropy needs points");
  // The plug-in keeps each point's own kernel: log rho(x_i) >= log(K(0) / N), so an isolated
  // particle is never pushed away without bound (leave-one-out would).
  auto sq = (x.unsqueeze(1) - x.unsqueeze(0)).pow(2).sum(2) / (2 * bandwidth * bandwidth);
  auto log_k = -sq - d * std::log(bandwidth) - 0.5 * d * kLog2Pi;
  return (torch::logsumexp(log_k, 1) - std::log(static_cast<double>(n))).mean();
}

}  // namespace uotflow
