// The toy 2-D data sets of the OT / flow literature (FFJORD, OT-Flow, UOTM), all with fixed shapes.
#include <c10/util/MathConstants.h>
#include <torch/torch.h>

#include <cmath>

#include "data/builtin.h"

namespace uotflow::data_detail {
namespace {

constexpr double kPi = c10::pi<double>;

// [n] int64 with each of 0..k-1 appearing n/k times (up to rounding), in random order, so that
// multi-part sets have exactly balanced parts whatever n is.
torch::Tensor balanced_labels(int64_t n, int64_t k, at::Generator& gen) {
  return torch::arange(n, torch::kLong).remainder(k).index_select(0, torch::randperm(n, gen));
}

// radius, angle: [n] -> [n, 2]
torch::Tensor from_polar(const torch::Tensor& radius, const torch::Tensor& angle) {
  return torch::stack({radius * torch::cos(angle), radius * torch::sin(angle)}, 1);
}

// centres: [K, 2]; components picked uniformly.
SamplerSpec isotropic_mixture(torch::Tensor centres, double std, double plot_radius) {
  SamplerSpec spec;
  spec.centres = centres;
  spec.mode_std = std;
  spec.plot_radius = plot_radius;
  spec.sample = [centres, std](int64_t n, at::Generator& gen) {
    const auto component = torch::randint(centres.size(0), {n}, gen);
    return centres.index_select(0, component) + std * torch::randn({n, 2}, gen);
  };
  return spec;
}

SamplerSpec eight_gaussians() {
  const double radius = 2.0 * std::sqrt(2.0);
  const auto angle = torch::arange(8, torch::kFloat) * (kPi / 4.0);
  return isotropic_mixture(from_polar(torch::full({8}, radius), angle), 0.5 / std::sqrt(2.0), 4.5);
}

SamplerSpec twenty_five_gaussians() {
  const auto grid = torch::arange(-2, 3, torch::kFloat);
  const auto centres = torch::stack(torch::meshgrid({grid, grid}, "ij"), -1).reshape({25, 2});
  return isotropic_mixture(centres, 0.05, 3.0);
}

SamplerSpec checkerboard() {
  SamplerSpec spec;
  spec.plot_radius = 4.5;
  spec.sample = [](int64_t n, at::Generator& gen) {
    const auto x1 = torch::rand({n}, gen) * 4.0 - 2.0;
    const auto row = torch::rand({n}, gen) - 2.0 * torch::randint(2, {n}, gen).to(torch::kFloat);
    // remainder (not fmod) so that negative columns alternate like the positive ones.
    const auto x2 = row + torch::floor(x1).remainder(2.0);
    return torch::stack({x1, x2}, 1) * 2.0;
  };
  return spec;
}

SamplerSpec moons() {
  SamplerSpec spec;
  spec.plot_radius = 3.0;
  spec.sample = [](int64_t n, at::Generator& gen) {
    const auto inner = balanced_labels(n, 2, gen).eq(1).unsqueeze(1);
    const auto t = torch::rand({n}, gen) * kPi;
    const auto upper = torch::stack({torch::cos(t), torch::sin(t)}, 1);
    const auto lower = torch::stack({1.0 - torch::cos(t), 0.5 - torch::sin(t)}, 1);
    const auto x = torch::where(inner, lower, upper) + 0.1 * torch::randn({n, 2}, gen);
    // The raw moons span [-1, 2] x [-0.5, 1]; centre them and stretch to about [-2.5, 2.5].
    return (x - torch::tensor({0.5f, 0.25f})) * 1.5;
  };
  return spec;
}

SamplerSpec spiral() {
  SamplerSpec spec;
  spec.plot_radius = 4.5;
  spec.sample = [](int64_t n, at::Generator& gen) {
    const auto t = torch::sqrt(torch::rand({n}, gen)) * (540.0 * 2.0 * kPi / 360.0);
    const auto arm = torch::stack({-torch::cos(t) * t + 0.5 * torch::rand({n}, gen),
                                   torch::sin(t) * t + 0.5 * torch::rand({n}, gen)},
                                  1);
    const auto sign = (1 - 2 * balanced_labels(n, 2, gen)).to(torch::kFloat).unsqueeze(1);
    // FFJORD's '2spirals' also blurs the arms with N(0, 0.1^2) after scaling.
    return arm * sign / 3.0 + 0.1 * torch::randn({n, 2}, gen);
  };
  return spec;
}

SamplerSpec swissroll() {
  SamplerSpec spec;
  spec.plot_radius = 4.5;
  spec.sample = [](int64_t n, at::Generator& gen) {
    const auto t = 1.5 * kPi * (1.0 + 2.0 * torch::rand({n}, gen));
    return (from_polar(t, t) + torch::randn({n, 2}, gen)) / 5.0;
  };
  return spec;
}

// Concentric circles with equal numbers of points; radii: [k] float32.
SamplerSpec circles(torch::Tensor radii, double noise_std, double scale) {
  SamplerSpec spec;
  spec.plot_radius = 4.5;
  spec.sample = [radii, noise_std, scale](int64_t n, at::Generator& gen) {
    const auto radius = radii.index_select(0, balanced_labels(n, radii.size(0), gen));
    const auto angle = torch::rand({n}, gen) * (2.0 * kPi);
    return (from_polar(radius, angle) + noise_std * torch::randn({n, 2}, gen)) * scale;
  };
  return spec;
}

SamplerSpec twocircles() {
  return circles(torch::tensor({1.0f, 0.5f}), 0.08, 3.0);
}

SamplerSpec rings() {
  return circles(torch::tensor({4.0f, 3.0f, 2.0f, 1.0f}), 0.08, 1.0);
}

void add_fixed(DatasetRegistry& registry, const std::string& name, const std::string& description,
               SamplerSpec (*make)()) {
  registry.add(name, description, [name, make](const Json& params) -> std::unique_ptr<Dataset> {
    check_params(params, {}, name);
    return std::make_unique<SamplerDataset>(make());
  });
}

}  // namespace

void add_toy2d_datasets(DatasetRegistry& registry) {
  add_fixed(registry, "8gaussians", "8 Gaussians (std 0.35) on a circle of radius 2.83",
            eight_gaussians);
  add_fixed(registry, "25gaussians", "25 Gaussians (std 0.05) on the grid {-2..2}^2",
            twenty_five_gaussians);
  add_fixed(registry, "checkerboard",
            "uniform on the dark squares of a 4x4 checkerboard in [-4, 4]^2", checkerboard);
  add_fixed(registry, "moons", "two interleaved half circles (noise 0.1), in about [-2.5, 2.5]^2",
            moons);
  add_fixed(registry, "spiral", "two interleaved spiral arms (FFJORD 2spirals)", spiral);
  add_fixed(registry, "swissroll", "2-D swiss roll (FFJORD), radius up to about 3", swissroll);
  add_fixed(registry, "twocircles", "two concentric circles, radii 3 and 1.5 (noise 0.24)",
            twocircles);
  add_fixed(registry, "rings", "four concentric rings, radii 4, 3, 2, 1 (noise 0.08)", rings);
}

}  // namespace uotflow::data_detail
