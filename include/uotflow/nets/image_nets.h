// Convolutional generators and potentials for images: DCGAN-like nets, the NCSN++ generator with
// adaptive group norm and the small discriminator of the UOTM/S-JKO references, with their layers.
#pragma once

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <string>
#include <vector>

#include "uotflow/nets/nets.h"

namespace uotflow {

// ---------------------------------------------------------------------------------------------
// Image shape and the flat <-> image frame

/// The [C, H, W] of the flat samples a net section describes: the section's `image_shape` when
/// it is not empty (its product must be `dim`), else [1, s, s] when dim = s^2, else [3, s, s]
/// when dim = 3 s^2. Anything else raises a ConfigError asking for image_shape.
///
///   infer_image_shape(784, section);   // [1, 28, 28]
///   infer_image_shape(3072, section);  // [3, 32, 32]
std::vector<int64_t> infer_image_shape(int64_t dim, const Json& section);

/// How a net sees the flat samples of the training code: [B, C*H*W] (C, H, W order) <-> a
/// working image [B, C, H', W'] where H', W' are H, W rounded up to a multiple of `multiple`,
/// zero-padded symmetrically (28 -> 32 pads 2 pixels each side) and cropped back on the way out.
class ImageFrame {
 public:
  ImageFrame(std::vector<int64_t> image_shape, int64_t multiple);

  /// flat: [B, C*H*W] -> [B, C, H', W']
  torch::Tensor to_image(const torch::Tensor& flat) const;
  /// image: [B, K, H', W'] -> [B, K*H*W] (the padding cropped away)
  torch::Tensor to_flat(const torch::Tensor& image) const;

  int64_t channels() const {
    return shape_[0];
  }
  /// Working height H' and width W'.
  int64_t height() const {
    return height_;
  }
  int64_t width() const {
    return width_;
  }
  /// C*H*W of the unpadded image.
  int64_t dim() const {
    return shape_[0] * shape_[1] * shape_[2];
  }

 private:
  std::vector<int64_t> shape_;
  int64_t height_, width_, top_, left_;
};

// ---------------------------------------------------------------------------------------------
// Layers shared by the image nets

/// Throws ConfigError("network '<net>': <key> <requirement>") unless `ok`.
void check_net_option(bool ok, const std::string& net, const std::string& key,
                      const std::string& requirement);
/// ConfigError naming `key` unless `values` is a non-empty list of positive integers.
void check_positive_list(const std::vector<int64_t>& values, const std::string& net,
                         const std::string& key);
/// ConfigError naming image_shape unless `shape` is [C, H, W] with positive entries.
void check_image_shape(const std::vector<int64_t>& shape, const std::string& net);

/// Groups of the GroupNorm over `channels` used by every image net: min(channels / 4, 32).
int64_t group_norm_groups(int64_t channels);
/// Whether group_norm_groups(channels) is >= 1 and divides `channels`.
bool group_norm_fits(int64_t channels);

/// The references' weight initialisation (score_sde default_init): uniform variance scaling with
/// fan_avg, variance = scale / ((fan_in + fan_out) / 2); scale 0 means 1e-10 (a layer that
/// starts as almost zero, as the references' `init_scale=0.`).
void variance_scaling_init_(torch::Tensor weight, double scale = 1.0);

/// Conv2d(in, out, kernel, stride 1, padding kernel / 2) initialised as the references (bias 0).
torch::nn::Conv2d reference_conv(int64_t in, int64_t out, int64_t kernel, double init_scale = 1.0,
                                 bool bias = true);
/// Linear(in, out) initialised as the references (bias 0).
torch::nn::Linear reference_linear(int64_t in, int64_t out, double init_scale = 1.0);

/// Depthwise filter with the separable FIR kernel [1, 3, 3, 1] (normalised to sum 1).
/// x: [B, C, H, W] -> [B, C, (H + 2 padding - 4) / stride + 1, ...]
torch::Tensor fir_filter(const torch::Tensor& x, int64_t stride, int64_t padding);
/// FIR down-sampling by 2 (upfirdn2d's downsample_2d): [B, C, H, W] -> [B, C, H/2, W/2].
torch::Tensor fir_downsample(const torch::Tensor& x);
/// FIR up-sampling by 2 (upfirdn2d's upsample_2d): [B, C, H, W] -> [B, C, 2H, 2W].
torch::Tensor fir_upsample(const torch::Tensor& x);

/// StyleGAN's minibatch standard-deviation feature as in the reference discriminators: the batch
/// is split into G strided groups (sample b is in group b mod B/G), G = the largest divisor of B
/// that is <= `group`; the std over each group (biased, sqrt(var + 1e-8)) is averaged over C, H, W
/// and appended as one constant channel. A group of identical images gives sqrt(1e-8) = 1e-4.
/// x: [B, C, H, W] -> [B, C + 1, H, W]
torch::Tensor minibatch_stddev(const torch::Tensor& x, int64_t group);

/// Adaptive group norm: GN(h) * (1 + gamma(w)) + beta(w), with (gamma, beta) = Linear(w) and the
/// Linear's bias starting at zero (the reference's bias [1, 0] on GN(h) * gamma + beta), so w = 0
/// gives a plain affine-free GroupNorm.
///
///   AdaptiveGroupNorm norm(64, 256);
///   auto out = norm->forward(torch::randn({8, 64, 16, 16}), torch::randn({8, 256}));
class AdaptiveGroupNormImpl : public torch::nn::Cloneable<AdaptiveGroupNormImpl> {
 public:
  AdaptiveGroupNormImpl(int64_t channels, int64_t style_dim);
  void reset() override;

  /// h: [B, C, H, W], w: [B, style_dim] -> [B, C, H, W]
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& w);

  int64_t channels, style_dim;
  /// w -> (gamma, beta): [B, style_dim] -> [B, 2C].
  torch::nn::Linear style{nullptr};
};
TORCH_MODULE(AdaptiveGroupNorm);

// ---------------------------------------------------------------------------------------------
// DCGAN-like nets

/// The working size of the dcgan nets: 4 * 2^n, the smallest such >= max(H, W) with n >= 1.
int64_t dcgan_working_size(const std::vector<int64_t>& image_shape);

struct DcganOptions {
  explicit DcganOptions(std::vector<int64_t> image_shape) : image_shape_(std::move(image_shape)) {}
  /// [C, H, W] of the samples.
  TORCH_ARG(std::vector<int64_t>, image_shape);
  /// Channels at the working resolution; they double at each halving.
  TORCH_ARG(int64_t, width) = 64;
  /// Latent dimension (generator only; 0 = deterministic map).
  TORCH_ARG(int64_t, nz) = 100;
};

/// U-Net generator T(x, z). The image is padded to the working size S = dcgan_working_size (28 ->
/// 32). Encoder: conv 3x3 (width), then n strided 4x4 convs down to 4x4 (channels doubling), each
/// with GroupNorm + SiLU; Linear(z) is added to the 4x4 features; decoder: ConvTranspose 4x4
/// stride 2 + GroupNorm + SiLU, each output concatenated with the encoder features of the same
/// resolution; conv 3x3 to C channels and tanh, so samples lie in [-1, 1].
///
///   DcganGenerator gen(DcganOptions({3, 32, 32}).width(64).nz(100));
///   auto y = gen.forward(torch::randn({16, 3072}), torch::randn({16, 100}));  // [16, 3072]
class DcganGenerator : public GeneratorNet {
 public:
  explicit DcganGenerator(DcganOptions options);
  /// x: [B, C*H*W], z: [B, nz] -> [B, C*H*W]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& z) override;
  int64_t latent_dim() const override {
    return options.nz();
  }

  DcganOptions options;

 private:
  ImageFrame frame_;
  // Encoder: the stem at S, then S/2, ..., 4; decoder: 4 -> 8, ..., S/2 -> S.
  std::vector<torch::nn::Conv2d> encoder_convs_;
  std::vector<torch::nn::GroupNorm> encoder_norms_;
  std::vector<torch::nn::ConvTranspose2d> decoder_convs_;
  std::vector<torch::nn::GroupNorm> decoder_norms_;
  torch::nn::Linear z_embed_{nullptr};
  torch::nn::Conv2d output_{nullptr};
};

/// Potential v(y): strided 4x4 convs (width at S/2, doubling) with LeakyReLU(0.2) and no norm
/// down to 4x4, flatten, Linear -> 1. The image is padded to dcgan_working_size as the generator.
class DcganPotential : public PotentialNet {
 public:
  explicit DcganPotential(DcganOptions options);
  /// y: [B, C*H*W] -> [B]
  torch::Tensor forward(const torch::Tensor& y) override;

  DcganOptions options;

 private:
  ImageFrame frame_;
  std::vector<torch::nn::Conv2d> convs_;
  torch::nn::Linear head_{nullptr};
};

/// Encoder z = E(x) of images: conv 3x3 (width) at the working size S, then n strided 4x4 convs
/// down to 4x4 (channels doubling), each with GroupNorm + SiLU, flattened, Linear to nz. With
/// DcganDecoder, the autoencoder whose latent space image flows may work in.
///
///   DcganEncoder e(DcganOptions({1, 28, 28}).width(32).nz(16));
///   auto z = e->forward(torch::randn({16, 784}));  // [16, 16]
class DcganEncoderImpl : public torch::nn::Cloneable<DcganEncoderImpl> {
 public:
  explicit DcganEncoderImpl(DcganOptions options);
  void reset() override;
  /// x: [B, C*H*W] -> [B, nz]
  torch::Tensor forward(const torch::Tensor& x);

  DcganOptions options;

 private:
  ImageFrame frame_;
  std::vector<torch::nn::Conv2d> convs_;  // S -> S, S -> S/2, ..., 8 -> 4
  std::vector<torch::nn::GroupNorm> norms_;
  torch::nn::Linear output_{nullptr};
};
TORCH_MODULE(DcganEncoder);

/// Decoder x = G(z) from a latent code alone: Linear(z) to width * 2^n channels at 4x4 (GroupNorm +
/// SiLU), then n ConvTranspose 4x4 stride 2 + GroupNorm + SiLU up to the working size S (channels
/// halving to `width`), conv 3x3 to C channels and tanh, cropped to H x W: samples lie in [-1, 1].
/// The generator of an image flow in the ambient space; nz >= 1.
///
///   DcganDecoder g(DcganOptions({1, 28, 28}).width(32).nz(32));
///   auto x = g->forward(torch::randn({16, 32}));  // [16, 784]
class DcganDecoderImpl : public torch::nn::Cloneable<DcganDecoderImpl> {
 public:
  explicit DcganDecoderImpl(DcganOptions options);
  void reset() override;
  /// z: [B, nz] -> [B, C*H*W]
  torch::Tensor forward(const torch::Tensor& z);

  DcganOptions options;

 private:
  ImageFrame frame_;
  torch::nn::Linear input_{nullptr};
  torch::nn::GroupNorm input_norm_{nullptr};
  std::vector<torch::nn::ConvTranspose2d> convs_;  // 4 -> 8, ..., S/2 -> S
  std::vector<torch::nn::GroupNorm> norms_;
  torch::nn::Conv2d output_{nullptr};
};
TORCH_MODULE(DcganDecoder);

// ---------------------------------------------------------------------------------------------
// NCSN++ generator (the DDGAN backbone of the UOTM / S-JKO references)

struct NcsnppOptions {
  explicit NcsnppOptions(std::vector<int64_t> image_shape) : image_shape_(std::move(image_shape)) {}
  /// [C, H, W] of the samples.
  TORCH_ARG(std::vector<int64_t>, image_shape);
  /// Base channels (the reference's num_channels_dae).
  TORCH_ARG(int64_t, nf) = 64;
  /// Channel multiplier of each resolution level; level l works at H' / 2^l.
  TORCH_ARG(std::vector<int64_t>, ch_mult) = std::vector<int64_t>{1, 2, 2, 2};
  /// Residual blocks per level on the way down (one more on the way up).
  TORCH_ARG(int64_t, num_res_blocks) = 2;
  /// Working resolutions (of the padded image) with self-attention after the residual blocks.
  TORCH_ARG(std::vector<int64_t>, attn_resolutions) = std::vector<int64_t>{16};
  TORCH_ARG(double, dropout) = 0.0;
  /// Latent dimension (>= 1: z drives every GroupNorm).
  TORCH_ARG(int64_t, nz) = 100;
  /// Width of the mapping network z -> w.
  TORCH_ARG(int64_t, z_emb_dim) = 256;
  /// Hidden Linear + SiLU layers of the mapping network after the first one.
  TORCH_ARG(int64_t, n_mlp) = 3;
  /// "biggan": FIR up/down-sampling inside the residual blocks (the only one supported).
  TORCH_ARG(std::string, resblock) = "biggan";
  /// "residual": the reference's input pyramid (FIR-blurred strided conv of the input added to
  /// every down-sampled level); "none": no pyramid.
  TORCH_ARG(std::string, progressive_input) = "residual";
  /// Residual sums divided by sqrt(2).
  TORCH_ARG(bool, skip_rescale) = true;
  /// Input already in [-1, 1]; false maps it from [0, 1] with 2x - 1.
  TORCH_ARG(bool, centered) = true;
};

class NcsnppNetwork;

/// NCSN++ U-Net T(x, z) as in DDGAN's NCSNpp with no time embedding: z -> PixelNorm -> mapping
/// network w (Linear + SiLU, 1 + n_mlp layers); BigGAN residual blocks whose two GroupNorms are
/// AdaptiveGroupNorm(w); single-head self-attention at attn_resolutions and at the bottom; the
/// last conv of each residual block, of each attention block and the output conv start almost at
/// zero (the reference's init_scale 0), so a new generator outputs values of order 1e-5. The
/// output is unconstrained (no tanh), as in the references. H, W are padded to a multiple of
/// 2^(levels - 1) (28 -> 32) and cropped back.
///
///   NcsnppGenerator gen(NcsnppOptions({3, 32, 32}).nf(64));
///   auto y = gen.forward(torch::randn({16, 3072}), torch::randn({16, 100}));  // [16, 3072]
class NcsnppGenerator : public GeneratorNet {
 public:
  explicit NcsnppGenerator(NcsnppOptions options);
  ~NcsnppGenerator() override;
  /// x: [B, C*H*W], z: [B, nz] -> [B, C*H*W]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& z) override;
  int64_t latent_dim() const override {
    return options.nz();
  }

  NcsnppOptions options;

 private:
  std::shared_ptr<NcsnppNetwork> net_;
};

// ---------------------------------------------------------------------------------------------
// Small discriminator of the references

struct SmallConvOptions {
  explicit SmallConvOptions(std::vector<int64_t> image_shape)
      : image_shape_(std::move(image_shape)) {}
  /// [C, H, W] of the samples.
  TORCH_ARG(std::vector<int64_t>, image_shape);
  /// Base channels (the reference's ngf).
  TORCH_ARG(int64_t, nf) = 64;
  /// Channels nf * ch_mult[i] of block i; block 0 keeps the resolution, each later one halves it
  /// (the reference's Discriminator_small: 2, 4, 8, 8 takes 32x32 to 4x4).
  TORCH_ARG(std::vector<int64_t>, ch_mult) = std::vector<int64_t>{2, 4, 8, 8};
  /// Group size of the minibatch-stddev channel.
  TORCH_ARG(int64_t, stddev_group) = 4;
};

/// The references' Discriminator_small without time input: conv 1x1 to nf * ch_mult[0], residual
/// blocks (LeakyReLU(0.2), conv 3x3, LeakyReLU, FIR down-sampling, conv 3x3; skip: FIR
/// down-sampling and conv 1x1; sum / sqrt(2)), a minibatch-stddev channel, conv 3x3 + LeakyReLU,
/// a SUM over H, W and Linear -> 1. The stddev channel makes v(y) depend on the rest of the batch.
/// H, W are padded to a multiple of 2^(blocks - 1).
class SmallConvPotential : public PotentialNet {
 public:
  explicit SmallConvPotential(SmallConvOptions options);
  /// y: [B, C*H*W] -> [B]
  torch::Tensor forward(const torch::Tensor& y) override;

  SmallConvOptions options;

 private:
  struct Block {
    torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, skip{nullptr};
    bool downsample;
  };
  torch::Tensor block_forward(Block& block, const torch::Tensor& h);

  ImageFrame frame_;
  torch::nn::Conv2d stem_{nullptr};
  std::vector<Block> blocks_;
  torch::nn::Conv2d final_conv_{nullptr};
  torch::nn::Linear head_{nullptr};
};

// ---------------------------------------------------------------------------------------------
// Registration

/// Adds "dcgan" and "ncsnpp" to a generator registry and "dcgan" and "small_conv" to a potential
/// registry. The factories read their keys from the section (absent keys take the option
/// defaults above) and `image_shape` ([C, H, W], empty = infer_image_shape).
void add_image_generators(GeneratorRegistry& registry);
void add_image_potentials(PotentialRegistry& registry);

}  // namespace uotflow
