// Image nets: shape inference and padding, the layers they share (reference init, FIR resampling,
// minibatch stddev, adaptive group norm), the DCGAN-like nets, the small discriminator and the
// registry entries of all image nets (NCSN++ itself is in ncsnpp.cpp).
#include "uotflow/nets/image_nets.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "nets/section.h"
#include "uotflow/core/error.h"

namespace uotflow {
namespace {

const double kInvSqrt2 = 1.0 / std::sqrt(2.0);
const double kLeakySlope = 0.2;

std::string net_name(const Json& section) {
  return section.value("net", std::string("?"));
}

int64_t exact_sqrt(int64_t n) {
  if (n < 1) {
    return 0;
  }
  const auto root = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  return root * root == n ? root : 0;
}

int64_t round_up(int64_t n, int64_t multiple) {
  return (n + multiple - 1) / multiple * multiple;
}

// The [1, 3, 3, 1] x [1, 3, 3, 1] kernel scaled to sum `gain`, one copy per channel:
// [channels, 1, 4, 4] in the dtype and device of `like`.
torch::Tensor fir_kernel(const torch::Tensor& like, int64_t channels, double gain) {
  auto k = torch::tensor({1.0, 3.0, 3.0, 1.0}, like.options());
  auto k2 = torch::outer(k, k) * (gain / 64.0);  // 64 = (1 + 3 + 3 + 1)^2
  return k2.expand({channels, 1, 4, 4}).contiguous();
}

torch::Tensor leaky(const torch::Tensor& x) {
  return torch::leaky_relu(x, kLeakySlope);
}

torch::nn::Conv2d strided_conv4(int64_t in, int64_t out) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 4).stride(2).padding(1));
}

}  // namespace

// ---- image shape and frame

std::vector<int64_t> infer_image_shape(int64_t dim, const Json& section) {
  const auto net = net_name(section);
  auto shape = read_or<std::vector<int64_t>>(section, "image_shape", {});
  if (!shape.empty()) {
    check_image_shape(shape, net);
    check_net_option(
        shape[0] * shape[1] * shape[2] == dim, net, "image_shape",
        shape_text(shape) + " does not hold the data dimension " + std::to_string(dim));
    return shape;
  }
  for (int64_t channels : {1, 3}) {
    if (dim % channels == 0) {
      if (const int64_t side = exact_sqrt(dim / channels)) {
        return {channels, side, side};
      }
    }
  }
  throw ConfigError("network '" + net + "': cannot infer the image shape of dimension " +
                    std::to_string(dim) + " (neither H*H nor 3*H*H); set image_shape to [C, H, W]");
}

ImageFrame::ImageFrame(std::vector<int64_t> image_shape, int64_t multiple)
    : shape_(std::move(image_shape)) {
  TORCH_CHECK(shape_.size() == 3 && multiple >= 1, "ImageFrame needs [C, H, W], got ",
              shape_text(shape_));
  height_ = round_up(shape_[1], multiple);
  width_ = round_up(shape_[2], multiple);
  top_ = (height_ - shape_[1]) / 2;
  left_ = (width_ - shape_[2]) / 2;
}

torch::Tensor ImageFrame::to_image(const torch::Tensor& flat) const {
  TORCH_CHECK(flat.dim() == 2 && flat.size(1) == dim(), "image net expects [B, ", dim(), "], got ",
              flat.sizes());
  auto image = flat.reshape({flat.size(0), shape_[0], shape_[1], shape_[2]});
  if (height_ == shape_[1] && width_ == shape_[2]) {
    return image;
  }
  return torch::constant_pad_nd(
      image, {left_, width_ - shape_[2] - left_, top_, height_ - shape_[1] - top_}, 0.0);
}

torch::Tensor ImageFrame::to_flat(const torch::Tensor& image) const {
  TORCH_CHECK(image.dim() == 4 && image.size(2) == height_ && image.size(3) == width_,
              "ImageFrame::to_flat expects [B, K, ", height_, ", ", width_, "], got ",
              image.sizes());
  auto cropped = image.slice(2, top_, top_ + shape_[1]).slice(3, left_, left_ + shape_[2]);
  return cropped.reshape({image.size(0), -1});
}

// ---- shared layers

void check_net_option(bool ok, const std::string& net, const std::string& key,
                      const std::string& requirement) {
  if (!ok) {
    throw ConfigError("network '" + net + "': " + key + " " + requirement);
  }
}

void check_positive_list(const std::vector<int64_t>& values, const std::string& net,
                         const std::string& key) {
  const bool ok = !values.empty() &&
                  std::all_of(values.begin(), values.end(), [](int64_t v) { return v >= 1; });
  check_net_option(ok, net, key,
                   "must be a non-empty list of positive integers, got " + shape_text(values));
}

void check_image_shape(const std::vector<int64_t>& shape, const std::string& net) {
  check_positive_list(shape, net, "image_shape");
  check_net_option(shape.size() == 3, net, "image_shape",
                   "must be [C, H, W], got " + shape_text(shape));
}

int64_t group_norm_groups(int64_t channels) {
  return std::min<int64_t>(channels / 4, 32);
}

bool group_norm_fits(int64_t channels) {
  const int64_t groups = group_norm_groups(channels);
  return groups >= 1 && channels % groups == 0;
}

void variance_scaling_init_(torch::Tensor weight, double scale) {
  torch::NoGradGuard no_grad;
  const double s = scale == 0.0 ? 1e-10 : scale;
  const int64_t receptive = weight.dim() > 2 ? weight[0][0].numel() : 1;
  const double fan_in = static_cast<double>(weight.size(1) * receptive);
  const double fan_out = static_cast<double>(weight.size(0) * receptive);
  const double bound = std::sqrt(3.0 * s / ((fan_in + fan_out) / 2.0));
  weight.uniform_(-bound, bound);
}

torch::nn::Conv2d reference_conv(int64_t in, int64_t out, int64_t kernel, double init_scale,
                                 bool bias) {
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(in, out, kernel).padding(kernel / 2).bias(bias));
  variance_scaling_init_(conv->weight, init_scale);
  if (bias) {
    torch::NoGradGuard no_grad;
    conv->bias.zero_();
  }
  return conv;
}

torch::nn::Linear reference_linear(int64_t in, int64_t out, double init_scale) {
  torch::nn::Linear linear(in, out);
  variance_scaling_init_(linear->weight, init_scale);
  torch::NoGradGuard no_grad;
  linear->bias.zero_();
  return linear;
}

torch::Tensor fir_filter(const torch::Tensor& x, int64_t stride, int64_t padding) {
  const int64_t channels = x.size(1);
  return torch::conv2d(x, fir_kernel(x, channels, 1.0), {}, stride, padding, 1, channels);
}

torch::Tensor fir_downsample(const torch::Tensor& x) {
  return fir_filter(x, 2, 1);
}

torch::Tensor fir_upsample(const torch::Tensor& x) {
  // Zero insertion then the kernel scaled to sum 4 (= upfirdn2d with pad (2, 1)).
  const int64_t channels = x.size(1);
  return torch::conv_transpose2d(x, fir_kernel(x, channels, 4.0), {}, 2, 1, 0, channels);
}

torch::Tensor minibatch_stddev(const torch::Tensor& x, int64_t group) {
  TORCH_CHECK(x.dim() == 4 && group >= 1, "minibatch_stddev expects [B, C, H, W] and group >= 1");
  const int64_t batch = x.size(0), height = x.size(2), width = x.size(3);
  int64_t g = std::min(group, batch);
  while (batch % g != 0) {
    --g;
  }
  // [G, B/G, C, H, W]: sample b sits at (b / (B/G), b % (B/G)), as view(G, -1, ...) in the
  // reference.
  auto grouped = x.reshape({g, batch / g, x.size(1), height, width});
  auto stddev = torch::sqrt(grouped.var(0, /*unbiased=*/false) + 1e-8);  // [B/G, C, H, W]
  stddev = stddev.mean({1, 2, 3}, /*keepdim=*/true);                     // [B/G, 1, 1, 1]
  stddev = stddev.repeat({g, 1, height, width});                         // [B, 1, H, W]
  return torch::cat({x, stddev}, 1);
}

AdaptiveGroupNormImpl::AdaptiveGroupNormImpl(int64_t channels_, int64_t style_dim_)
    : channels(channels_), style_dim(style_dim_) {
  TORCH_CHECK(group_norm_fits(channels) && style_dim >= 1, "AdaptiveGroupNorm over ", channels,
              " channels cannot use min(C / 4, 32) groups");
  reset();
}

void AdaptiveGroupNormImpl::reset() {
  style = register_module("style", reference_linear(style_dim, 2 * channels));
}

torch::Tensor AdaptiveGroupNormImpl::forward(const torch::Tensor& h, const torch::Tensor& w) {
  auto gamma_beta = style->forward(w).unsqueeze(2).unsqueeze(3).chunk(2, 1);
  auto normed = torch::group_norm(h, group_norm_groups(channels), {}, {}, 1e-6);
  return normed * (1 + gamma_beta[0]) + gamma_beta[1];
}

// ---- DCGAN-like nets

int64_t dcgan_working_size(const std::vector<int64_t>& image_shape) {
  const int64_t side = std::max(image_shape[1], image_shape[2]);
  int64_t size = 8;
  while (size < side) {
    size *= 2;
  }
  return size;
}

namespace {

// Number of halvings from the working size down to 4x4.
int64_t dcgan_levels(const std::vector<int64_t>& image_shape) {
  int64_t levels = 0;
  for (int64_t s = dcgan_working_size(image_shape); s > 4; s /= 2) {
    ++levels;
  }
  return levels;
}

DcganOptions checked_dcgan(DcganOptions o, bool generator) {
  check_image_shape(o.image_shape(), "dcgan");
  check_net_option(o.width() >= 1, "dcgan", "width", "must be >= 1");
  check_net_option(o.nz() >= 0, "dcgan", "nz", "must be >= 0");
  if (generator) {
    for (int64_t l = 0; l <= dcgan_levels(o.image_shape()); ++l) {
      check_net_option(group_norm_fits(o.width() << l), "dcgan", "width",
                       std::to_string(o.width()) +
                           " gives channel counts that min(C / 4, 32) GroupNorm groups do not "
                           "divide (use a multiple of 4)");
    }
  }
  return o;
}

torch::nn::GroupNorm group_norm(int64_t channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(group_norm_groups(channels), channels));
}

torch::Tensor norm_silu(torch::nn::GroupNorm& norm, const torch::Tensor& h) {
  return torch::silu(norm->forward(h));
}

}  // namespace

DcganGenerator::DcganGenerator(DcganOptions options_)
    : options(checked_dcgan(std::move(options_), true)),
      frame_(options.image_shape(), dcgan_working_size(options.image_shape())) {
  const int64_t levels = dcgan_levels(options.image_shape());
  const int64_t width = options.width();
  auto add_encoder = [&](torch::nn::Conv2d conv, int64_t channels) {
    const auto name = std::to_string(encoder_convs_.size());
    encoder_convs_.push_back(register_module("enc_conv" + name, conv));
    encoder_norms_.push_back(register_module("enc_norm" + name, group_norm(channels)));
  };
  add_encoder(torch::nn::Conv2d(torch::nn::Conv2dOptions(frame_.channels(), width, 3).padding(1)),
              width);
  for (int64_t l = 1; l <= levels; ++l) {
    add_encoder(strided_conv4(width << (l - 1), width << l), width << l);
  }
  if (options.nz() > 0) {
    z_embed_ = register_module("z_embed", torch::nn::Linear(options.nz(), 16 * (width << levels)));
  }
  // Decoder step to level l - 1 takes the level-l features (concatenated with the skip below the
  // top) and gives width << (l - 1) channels.
  for (int64_t l = levels; l >= 1; --l) {
    const int64_t in = l == levels ? width << l : 2 * (width << l);
    const int64_t out = width << (l - 1);
    const auto name = std::to_string(decoder_convs_.size());
    decoder_convs_.push_back(
        register_module("dec_conv" + name,
                        torch::nn::ConvTranspose2d(
                            torch::nn::ConvTranspose2dOptions(in, out, 4).stride(2).padding(1))));
    decoder_norms_.push_back(register_module("dec_norm" + name, group_norm(out)));
  }
  output_ = register_module(
      "output",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(2 * width, frame_.channels(), 3).padding(1)));
}

torch::Tensor DcganGenerator::forward(const torch::Tensor& x, const torch::Tensor& z) {
  std::vector<torch::Tensor> skips;  // encoder features, full resolution first
  auto h = frame_.to_image(x);
  for (size_t i = 0; i < encoder_convs_.size(); ++i) {
    h = norm_silu(encoder_norms_[i], encoder_convs_[i]->forward(h));
    skips.push_back(h);
  }
  skips.pop_back();  // the 4x4 features go on directly
  if (options.nz() > 0) {
    h = h + z_embed_->forward(z).view_as(h);
  }
  for (size_t i = 0; i < decoder_convs_.size(); ++i) {
    h = norm_silu(decoder_norms_[i], decoder_convs_[i]->forward(h));
    h = torch::cat({h, skips.back()}, 1);
    skips.pop_back();
  }
  return frame_.to_flat(torch::tanh(output_->forward(h)));
}

DcganEncoderImpl::DcganEncoderImpl(DcganOptions options_)
    : options(checked_dcgan(std::move(options_), true)),
      frame_(options.image_shape(), dcgan_working_size(options.image_shape())) {
  check_net_option(options.nz() >= 1, "dcgan encoder", "nz", "must be >= 1");
  reset();
}

void DcganEncoderImpl::reset() {
  const int64_t levels = dcgan_levels(options.image_shape());
  const int64_t width = options.width();
  convs_.clear();
  norms_.clear();
  auto add = [&](torch::nn::Conv2d conv, int64_t channels) {
    const auto name = std::to_string(convs_.size());
    convs_.push_back(register_module("conv" + name, conv));
    norms_.push_back(register_module("norm" + name, group_norm(channels)));
  };
  add(torch::nn::Conv2d(torch::nn::Conv2dOptions(frame_.channels(), width, 3).padding(1)), width);
  for (int64_t l = 1; l <= levels; ++l) {
    add(strided_conv4(width << (l - 1), width << l), width << l);
  }
  output_ = register_module("output", torch::nn::Linear(16 * (width << levels), options.nz()));
}

torch::Tensor DcganEncoderImpl::forward(const torch::Tensor& x) {
  auto h = frame_.to_image(x);
  for (size_t i = 0; i < convs_.size(); ++i) {
    h = norm_silu(norms_[i], convs_[i]->forward(h));
  }
  return output_->forward(h.flatten(1));
}

DcganDecoderImpl::DcganDecoderImpl(DcganOptions options_)
    : options(checked_dcgan(std::move(options_), true)),
      frame_(options.image_shape(), dcgan_working_size(options.image_shape())) {
  check_net_option(options.nz() >= 1, "dcgan decoder", "nz", "must be >= 1");
  reset();
}

void DcganDecoderImpl::reset() {
  const int64_t levels = dcgan_levels(options.image_shape());
  const int64_t width = options.width();
  convs_.clear();
  norms_.clear();
  input_ = register_module("input", torch::nn::Linear(options.nz(), 16 * (width << levels)));
  input_norm_ = register_module("input_norm", group_norm(width << levels));
  for (int64_t l = levels; l >= 1; --l) {
    const auto name = std::to_string(convs_.size());
    convs_.push_back(register_module(
        "conv" + name, torch::nn::ConvTranspose2d(
                           torch::nn::ConvTranspose2dOptions(width << l, width << (l - 1), 4)
                               .stride(2)
                               .padding(1))));
    norms_.push_back(register_module("norm" + name, group_norm(width << (l - 1))));
  }
  output_ = register_module(
      "output",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(width, frame_.channels(), 3).padding(1)));
}

torch::Tensor DcganDecoderImpl::forward(const torch::Tensor& z) {
  const int64_t top = options.width() << dcgan_levels(options.image_shape());
  auto h = norm_silu(input_norm_, input_->forward(z).view({z.size(0), top, 4, 4}));
  for (size_t i = 0; i < convs_.size(); ++i) {
    h = norm_silu(norms_[i], convs_[i]->forward(h));
  }
  return frame_.to_flat(torch::tanh(output_->forward(h)));
}

DcganPotential::DcganPotential(DcganOptions options_)
    : options(checked_dcgan(std::move(options_), false)),
      frame_(options.image_shape(), dcgan_working_size(options.image_shape())) {
  const int64_t levels = dcgan_levels(options.image_shape());
  int64_t in = frame_.channels();
  for (int64_t l = 0; l < levels; ++l) {
    const int64_t out = options.width() << l;
    convs_.push_back(register_module("conv" + std::to_string(l), strided_conv4(in, out)));
    in = out;
  }
  head_ = register_module("head", torch::nn::Linear(16 * in, 1));
}

torch::Tensor DcganPotential::forward(const torch::Tensor& y) {
  auto h = frame_.to_image(y);
  for (auto& conv : convs_) {
    h = leaky(conv->forward(h));
  }
  return head_->forward(h.flatten(1)).squeeze(-1);
}

// ---- small discriminator

namespace {

SmallConvOptions checked_small_conv(SmallConvOptions o) {
  check_image_shape(o.image_shape(), "small_conv");
  check_net_option(o.nf() >= 1, "small_conv", "nf", "must be >= 1");
  check_positive_list(o.ch_mult(), "small_conv", "ch_mult");
  check_net_option(o.stddev_group() >= 1, "small_conv", "stddev_group", "must be >= 1");
  return o;
}

}  // namespace

SmallConvPotential::SmallConvPotential(SmallConvOptions options_)
    : options(checked_small_conv(std::move(options_))),
      frame_(options.image_shape(), int64_t{1} << (options.ch_mult().size() - 1)) {
  const auto& mult = options.ch_mult();
  int64_t in = options.nf() * mult[0];
  stem_ = register_module("stem", reference_conv(frame_.channels(), in, 1));
  for (size_t i = 0; i < mult.size(); ++i) {
    const int64_t out = options.nf() * mult[i];
    const auto name = "block" + std::to_string(i);
    Block block;
    block.conv1 = register_module(name + "_conv1", reference_conv(in, out, 3));
    block.conv2 = register_module(name + "_conv2", reference_conv(out, out, 3, 0.0));
    block.skip = register_module(name + "_skip", reference_conv(in, out, 1, 1.0, false));
    block.downsample = i > 0;
    blocks_.push_back(block);
    in = out;
  }
  final_conv_ = register_module("final_conv", reference_conv(in + 1, in, 3, 0.0));
  head_ = register_module("head", reference_linear(in, 1));
}

torch::Tensor SmallConvPotential::block_forward(Block& block, const torch::Tensor& h) {
  auto out = leaky(block.conv1->forward(leaky(h)));
  auto skip = h;
  if (block.downsample) {
    out = fir_downsample(out);
    skip = fir_downsample(skip);
  }
  return (block.conv2->forward(out) + block.skip->forward(skip)) * kInvSqrt2;
}

torch::Tensor SmallConvPotential::forward(const torch::Tensor& y) {
  auto h = stem_->forward(frame_.to_image(y));
  for (auto& block : blocks_) {
    h = block_forward(block, h);
  }
  h = leaky(final_conv_->forward(minibatch_stddev(h, options.stddev_group())));
  return head_->forward(h.sum({2, 3})).squeeze(-1);
}

// ---- registration

namespace {

DcganOptions dcgan_options(int64_t dim, const Json& s) {
  DcganOptions d(infer_image_shape(dim, s));
  return d.width(read_or(s, "width", d.width())).nz(read_or(s, "nz", d.nz()));
}

NcsnppOptions ncsnpp_options(int64_t dim, const Json& s) {
  NcsnppOptions d(infer_image_shape(dim, s));
  return d.nf(read_or(s, "nf", d.nf()))
      .ch_mult(read_or(s, "ch_mult", d.ch_mult()))
      .num_res_blocks(read_or(s, "num_res_blocks", d.num_res_blocks()))
      .attn_resolutions(read_or(s, "attn_resolutions", d.attn_resolutions()))
      .dropout(read_or(s, "dropout", d.dropout()))
      .nz(read_or(s, "nz", d.nz()))
      .z_emb_dim(read_or(s, "z_emb_dim", d.z_emb_dim()))
      .n_mlp(read_or(s, "n_mlp", d.n_mlp()))
      .resblock(read_or(s, "resblock", d.resblock()))
      .progressive_input(read_or(s, "progressive_input", d.progressive_input()))
      .skip_rescale(read_or(s, "skip_rescale", d.skip_rescale()))
      .centered(read_or(s, "centered", d.centered()));
}

SmallConvOptions small_conv_options(int64_t dim, const Json& s) {
  SmallConvOptions d(infer_image_shape(dim, s));
  return d.nf(read_or(s, "nf", d.nf()))
      .ch_mult(read_or(s, "ch_mult", d.ch_mult()))
      .stddev_group(read_or(s, "stddev_group", d.stddev_group()));
}

// The keys each image net reads, with its options struct's defaults (image_shape [] = inferred
// from the data dimension).
Json dcgan_keys(bool generator) {
  const DcganOptions d({});
  Json out{{"image_shape", Json::array()}, {"width", d.width()}};
  if (generator) {
    out["nz"] = d.nz();
  }
  return out;
}

Json ncsnpp_keys() {
  const NcsnppOptions d({});
  return Json{{"image_shape", Json::array()},
              {"nf", d.nf()},
              {"ch_mult", d.ch_mult()},
              {"num_res_blocks", d.num_res_blocks()},
              {"attn_resolutions", d.attn_resolutions()},
              {"dropout", d.dropout()},
              {"nz", d.nz()},
              {"z_emb_dim", d.z_emb_dim()},
              {"n_mlp", d.n_mlp()},
              {"resblock", d.resblock()},
              {"progressive_input", d.progressive_input()},
              {"skip_rescale", d.skip_rescale()},
              {"centered", d.centered()}};
}

Json small_conv_keys() {
  const SmallConvOptions d({});
  return Json{{"image_shape", Json::array()},
              {"nf", d.nf()},
              {"ch_mult", d.ch_mult()},
              {"stddev_group", d.stddev_group()}};
}

}  // namespace

void add_image_generators(GeneratorRegistry& registry) {
  registry.add(
      "dcgan",
      "U-Net of strided convs with skips, Linear(z) added at 4x4, GroupNorm + SiLU, tanh "
      "(images)",
      [](int64_t dim, const Json& s) -> std::shared_ptr<GeneratorNet> {
        return std::make_shared<DcganGenerator>(dcgan_options(dim, s));
      },
      dcgan_keys(true));
  registry.add(
      "ncsnpp",
      "NCSN++ U-Net of the UOTM/S-JKO references, z through a mapping network into "
      "adaptive GroupNorms (images)",
      [](int64_t dim, const Json& s) -> std::shared_ptr<GeneratorNet> {
        return std::make_shared<NcsnppGenerator>(ncsnpp_options(dim, s));
      },
      ncsnpp_keys());
}

void add_image_potentials(PotentialRegistry& registry) {
  registry.add(
      "dcgan", "strided 4x4 convs with LeakyReLU(0.2) to 4x4, Linear -> 1 (images)",
      [](int64_t dim, const Json& s) -> std::shared_ptr<PotentialNet> {
        return std::make_shared<DcganPotential>(dcgan_options(dim, s));
      },
      dcgan_keys(false));
  registry.add(
      "small_conv",
      "the references' small discriminator: residual FIR down-sampling blocks, "
      "minibatch stddev, spatial sum, Linear -> 1 (images)",
      [](int64_t dim, const Json& s) -> std::shared_ptr<PotentialNet> {
        return std::make_shared<SmallConvPotential>(small_conv_options(dim, s));
      },
      small_conv_keys());
}

}  // namespace uotflow
