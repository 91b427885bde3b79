// NCSN++ generator of the UOTM / S-JKO references (DDGAN's NCSNpp with adaptive group norm and no
// time embedding): BigGAN residual blocks, self-attention, input pyramid, mapping network.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "uotflow/core/error.h"
#include "uotflow/nets/image_nets.h"

namespace uotflow {
namespace {

const double kSkipScale = 1.0 / std::sqrt(2.0);

torch::Tensor skip_sum(const torch::Tensor& a, const torch::Tensor& b, bool rescale) {
  return rescale ? (a + b) * kSkipScale : a + b;
}

enum class Resample { kNone, kUp, kDown };

// ResnetBlockBigGANpp_Adagn: AdaGN, SiLU, [FIR up/down], conv 3x3, AdaGN, SiLU, dropout,
// conv 3x3 (starting at ~0); skip: [FIR up/down], conv 1x1 when the shape changes.
class ResBlockImpl : public torch::nn::Module {
 public:
  ResBlockImpl(int64_t in, int64_t out, int64_t style_dim, Resample resample, double dropout,
               bool skip_rescale)
      : resample_(resample), skip_rescale_(skip_rescale) {
    norm0_ = register_module("norm0", AdaptiveGroupNorm(in, style_dim));
    conv0_ = register_module("conv0", reference_conv(in, out, 3));
    norm1_ = register_module("norm1", AdaptiveGroupNorm(out, style_dim));
    dropout_ = register_module("dropout", torch::nn::Dropout(dropout));
    conv1_ = register_module("conv1", reference_conv(out, out, 3, 0.0));
    if (in != out || resample != Resample::kNone) {
      skip_ = register_module("skip", reference_conv(in, out, 1));
    }
  }

  // x: [B, in, R, R], w: [B, style_dim] -> [B, out, R', R'] (R' = 2R, R / 2 or R)
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& w) {
    auto h = torch::silu(norm0_->forward(x, w));
    auto skip = x;
    if (resample_ != Resample::kNone) {
      h = resample(h);
      skip = resample(skip);
    }
    h = conv0_->forward(h);
    h = dropout_->forward(torch::silu(norm1_->forward(h, w)));
    h = conv1_->forward(h);
    if (skip_) {
      skip = skip_->forward(skip);
    }
    return skip_sum(skip, h, skip_rescale_);
  }

 private:
  torch::Tensor resample(const torch::Tensor& x) const {
    return resample_ == Resample::kUp ? fir_upsample(x) : fir_downsample(x);
  }

  Resample resample_;
  bool skip_rescale_;
  AdaptiveGroupNorm norm0_{nullptr}, norm1_{nullptr};
  torch::nn::Conv2d conv0_{nullptr}, conv1_{nullptr}, skip_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(ResBlock);

// AttnBlockpp: single-head self-attention over the H*W positions with 1x1 q, k, v and an output
// projection starting at ~0.
class SelfAttentionImpl : public torch::nn::Module {
 public:
  SelfAttentionImpl(int64_t channels, bool skip_rescale) : skip_rescale_(skip_rescale) {
    norm_ = register_module(
        "norm", torch::nn::GroupNorm(
                    torch::nn::GroupNormOptions(group_norm_groups(channels), channels).eps(1e-6)));
    query_ = register_module("query", reference_conv(channels, channels, 1));
    key_ = register_module("key", reference_conv(channels, channels, 1));
    value_ = register_module("value", reference_conv(channels, channels, 1));
    project_ = register_module("project", reference_conv(channels, channels, 1, 0.0));
  }

  // x: [B, C, H, W] -> [B, C, H, W]
  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t batch = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
    auto h = norm_->forward(x);
    auto q = query_->forward(h).flatten(2);  // [B, C, N]
    auto k = key_->forward(h).flatten(2);
    auto v = value_->forward(h).flatten(2);
    auto weights =
        torch::softmax(torch::bmm(q.transpose(1, 2), k) / std::sqrt(static_cast<double>(channels)),
                       -1);  // [B, N, N]
    auto attended = torch::bmm(v, weights.transpose(1, 2)).view({batch, channels, height, width});
    return skip_sum(x, project_->forward(attended), skip_rescale_);
  }

 private:
  bool skip_rescale_;
  torch::nn::GroupNorm norm_{nullptr};
  torch::nn::Conv2d query_{nullptr}, key_{nullptr}, value_{nullptr}, project_{nullptr};
};
TORCH_MODULE(SelfAttention);

// z: [B, nz] -> [B, nz] / rms
torch::Tensor pixel_norm(const torch::Tensor& z) {
  return z * torch::rsqrt(z.pow(2).mean(1, /*keepdim=*/true) + 1e-8);
}

NcsnppOptions checked_ncsnpp(NcsnppOptions o) {
  const std::string net = "ncsnpp";
  check_image_shape(o.image_shape(), net);
  check_net_option(o.nf() >= 1, net, "nf", "must be >= 1");
  check_positive_list(o.ch_mult(), net, "ch_mult");
  for (int64_t channels : o.ch_mult()) {
    check_net_option(group_norm_fits(o.nf()) && group_norm_fits(o.nf() * channels), net, "nf",
                     "* ch_mult gives channel counts that min(C / 4, 32) GroupNorm groups do not "
                     "divide (use multiples of 4, and of 32 above 128)");
  }
  check_net_option(o.num_res_blocks() >= 1, net, "num_res_blocks", "must be >= 1");
  check_net_option(o.dropout() >= 0.0 && o.dropout() < 1.0, net, "dropout", "must be in [0, 1)");
  check_net_option(o.nz() >= 1, net, "nz", "must be >= 1 (z drives every GroupNorm)");
  check_net_option(o.z_emb_dim() >= 1, net, "z_emb_dim", "must be >= 1");
  check_net_option(o.n_mlp() >= 0, net, "n_mlp", "must be >= 0");
  check_net_option(o.resblock() == "biggan", net, "resblock",
                   "must be \"biggan\" (the only block supported), got \"" + o.resblock() + "\"");
  check_net_option(o.progressive_input() == "residual" || o.progressive_input() == "none", net,
                   "progressive_input",
                   "must be \"residual\" or \"none\", got \"" + o.progressive_input() + "\"");
  return o;
}

}  // namespace

// The network behind NcsnppGenerator, module for module as DDGAN's NCSNpp (progressive "none").
class NcsnppNetwork : public torch::nn::Module {
 public:
  explicit NcsnppNetwork(const NcsnppOptions& o)
      : o_(o), frame_(o.image_shape(), int64_t{1} << (o.ch_mult().size() - 1)) {
    build_mapping();
    build_down();
    build_up();
  }

  // x: [B, C*H*W], z: [B, nz] -> [B, C*H*W]
  torch::Tensor forward(const torch::Tensor& x_flat, const torch::Tensor& z) {
    auto x = frame_.to_image(x_flat);
    if (!o_.centered()) {
      x = 2 * x - 1;
    }
    const auto w = mapping_->forward(pixel_norm(z));
    auto hs = down(x, w);
    auto h = hs.back();
    h = middle_[0]->forward(h, w);
    h = middle_attention_->forward(h);
    h = middle_[1]->forward(h, w);
    h = up(h, hs, w);
    return frame_.to_flat(output_conv_->forward(torch::silu(output_norm_->forward(h))));
  }

 private:
  struct DownLevel {
    std::vector<ResBlock> blocks;
    std::vector<SelfAttention> attention;  // one per block, or none
    ResBlock downsample{nullptr};          // all levels but the last
    torch::nn::Conv2d pyramid{nullptr};    // input pyramid conv of the down-sampled level
  };
  struct UpLevel {
    std::vector<ResBlock> blocks;
    SelfAttention attention{nullptr};
    ResBlock upsample{nullptr};  // all levels but the first
  };

  bool has_attention(size_t level) const {
    const int64_t resolution = frame_.width() >> level;
    const auto& list = o_.attn_resolutions();
    return std::find(list.begin(), list.end(), resolution) != list.end();
  }
  bool residual_pyramid() const {
    return o_.progressive_input() == "residual";
  }
  ResBlock res_block(const std::string& name, int64_t in, int64_t out,
                     Resample resample = Resample::kNone) {
    return register_module(
        name, ResBlock(in, out, o_.z_emb_dim(), resample, o_.dropout(), o_.skip_rescale()));
  }
  SelfAttention attention(const std::string& name, int64_t channels) {
    return register_module(name, SelfAttention(channels, o_.skip_rescale()));
  }

  void build_mapping() {
    mapping_ = register_module("mapping", torch::nn::Sequential());
    mapping_->push_back(reference_linear(o_.nz(), o_.z_emb_dim()));
    mapping_->push_back(torch::nn::SiLU());
    for (int64_t i = 0; i < o_.n_mlp(); ++i) {
      mapping_->push_back(reference_linear(o_.z_emb_dim(), o_.z_emb_dim()));
      mapping_->push_back(torch::nn::SiLU());
    }
  }

  void build_down() {
    const auto& mult = o_.ch_mult();
    stem_ = register_module("stem", reference_conv(frame_.channels(), o_.nf(), 3));
    skip_channels_ = {o_.nf()};
    int64_t in = o_.nf();
    int64_t pyramid_in = frame_.channels();
    for (size_t l = 0; l < mult.size(); ++l) {
      const auto prefix = "down" + std::to_string(l) + "_";
      DownLevel level;
      for (int64_t b = 0; b < o_.num_res_blocks(); ++b) {
        const int64_t out = o_.nf() * mult[l];
        level.blocks.push_back(res_block(prefix + "block" + std::to_string(b), in, out));
        in = out;
        if (has_attention(l)) {
          level.attention.push_back(attention(prefix + "attention" + std::to_string(b), in));
        }
        skip_channels_.push_back(in);
      }
      if (l + 1 < mult.size()) {
        level.downsample = res_block(prefix + "downsample", in, in, Resample::kDown);
        if (residual_pyramid()) {
          // The reference's FIR-blurred strided conv (conv_downsample_2d): blur, conv 3x3 / 2.
          level.pyramid = register_module(
              prefix + "pyramid",
              torch::nn::Conv2d(torch::nn::Conv2dOptions(pyramid_in, in, 3).stride(2)));
          variance_scaling_init_(level.pyramid->weight);
          torch::NoGradGuard no_grad;
          level.pyramid->bias.zero_();
          pyramid_in = in;
        }
        skip_channels_.push_back(in);
      }
      down_.push_back(std::move(level));
    }
    middle_ = {res_block("middle_block0", in, in), res_block("middle_block1", in, in)};
    middle_attention_ = attention("middle_attention", in);
    bottom_channels_ = in;
  }

  void build_up() {
    const auto& mult = o_.ch_mult();
    auto skips = skip_channels_;
    int64_t in = bottom_channels_;
    up_.resize(mult.size());
    for (size_t l = mult.size(); l-- > 0;) {
      const auto prefix = "up" + std::to_string(l) + "_";
      UpLevel& level = up_[l];
      for (int64_t b = 0; b <= o_.num_res_blocks(); ++b) {
        const int64_t out = o_.nf() * mult[l];
        level.blocks.push_back(
            res_block(prefix + "block" + std::to_string(b), in + skips.back(), out));
        skips.pop_back();
        in = out;
      }
      if (has_attention(l)) {
        level.attention = attention(prefix + "attention", in);
      }
      if (l > 0) {
        level.upsample = res_block(prefix + "upsample", in, in, Resample::kUp);
      }
    }
    output_norm_ = register_module(
        "output_norm",
        torch::nn::GroupNorm(torch::nn::GroupNormOptions(group_norm_groups(in), in).eps(1e-6)));
    output_conv_ = register_module("output_conv", reference_conv(in, frame_.channels(), 3, 0.0));
  }

  // x: [B, C, H', W'] -> the skip features, full resolution first.
  std::vector<torch::Tensor> down(const torch::Tensor& x, const torch::Tensor& w) {
    std::vector<torch::Tensor> hs{stem_->forward(x)};
    auto pyramid = x;
    for (auto& level : down_) {
      for (size_t b = 0; b < level.blocks.size(); ++b) {
        auto h = level.blocks[b]->forward(hs.back(), w);
        hs.push_back(level.attention.empty() ? h : level.attention[b]->forward(h));
      }
      if (!level.downsample) {
        continue;
      }
      auto h = level.downsample->forward(hs.back(), w);
      if (level.pyramid) {
        pyramid = skip_sum(level.pyramid->forward(fir_filter(pyramid, 1, 2)), h, o_.skip_rescale());
        h = pyramid;
      }
      hs.push_back(h);
    }
    return hs;
  }

  // h: bottom features; consumes `hs` from the back.
  torch::Tensor up(torch::Tensor h, std::vector<torch::Tensor>& hs, const torch::Tensor& w) {
    for (size_t l = up_.size(); l-- > 0;) {
      auto& level = up_[l];
      for (auto& block : level.blocks) {
        h = block->forward(torch::cat({h, hs.back()}, 1), w);
        hs.pop_back();
      }
      if (level.attention) {
        h = level.attention->forward(h);
      }
      if (level.upsample) {
        h = level.upsample->forward(h, w);
      }
    }
    return h;
  }

  NcsnppOptions o_;
  ImageFrame frame_;
  torch::nn::Sequential mapping_{nullptr};
  torch::nn::Conv2d stem_{nullptr};
  std::vector<DownLevel> down_;
  std::vector<ResBlock> middle_;
  SelfAttention middle_attention_{nullptr};
  std::vector<UpLevel> up_;  // indexed by level, run from the last
  torch::nn::GroupNorm output_norm_{nullptr};
  torch::nn::Conv2d output_conv_{nullptr};
  std::vector<int64_t> skip_channels_;
  int64_t bottom_channels_ = 0;
};

NcsnppGenerator::NcsnppGenerator(NcsnppOptions options_)
    : options(checked_ncsnpp(std::move(options_))) {
  net_ = register_module("net", std::make_shared<NcsnppNetwork>(options));
}

NcsnppGenerator::~NcsnppGenerator() = default;

torch::Tensor NcsnppGenerator::forward(const torch::Tensor& x, const torch::Tensor& z) {
  return net_->forward(x, z);
}

}  // namespace uotflow
