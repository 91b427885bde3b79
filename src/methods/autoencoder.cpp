// The autoencoder method: x -> D(E(x)) trained on the mean squared error per pixel with Adam, on
// fresh batches of the target data. Its samples are reconstructions of data draws, so the run's
// FID of them is the floor a flow in its latent space can reach. And its latent space, loaded by
// other runs with a checksum of the weights.
#include "uotflow/methods/autoencoder.h"

#include <torch/torch.h>

#include <filesystem>

#include "uotflow/core/error.h"
#include "uotflow/data/images.h"
#include "uotflow/data/tensor_dataset.h"
#include "uotflow/io/archive.h"
#include "uotflow/io/run_dir.h"
#include "uotflow/io/safetensors.h"
#include "uotflow/io/sha256.h"
#include "uotflow/optim/optimizer.h"

namespace uotflow {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kChunk = 1024;  // images per pass when encoding or decoding many

// f applied to x in chunks of kChunk rows, on the CPU without gradients.
template <typename F>
torch::Tensor in_chunks(const torch::Tensor& x, F f) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < x.size(0); i += kChunk) {
    out.push_back(f(x.slice(0, i, std::min(x.size(0), i + kChunk))));
  }
  return out.empty() ? torch::Tensor() : torch::cat(out);
}

class Autoencoder : public Method {
 public:
  explicit Autoencoder(const MethodContext& ctx)
      : options_(AutoencoderOptions::from_json(ctx.config)),
        target_(ctx.problem.target),
        parallel_(ctx.parallel),
        device_(ctx.device),
        encoder_(options_.nets(image_shape_of(ctx.problem))),
        decoder_(options_.nets(image_shape_of(ctx.problem))) {
    parallel_.shard_batch(options_.batch_size(), "autoencoder.batch_size");  // or fails now
    encoder_->to(device_);
    decoder_->to(device_);
    OptimizerSettings settings;
    settings.lr = options_.lr();
    auto params = encoder_->parameters();
    for (const auto& p : decoder_->parameters()) {
      params.push_back(p);
    }
    optimizer_ = optimizer_registry().create("adam", params, settings);
  }

  std::map<std::string, double> step(int64_t /*step*/, RandomStreams& streams) override {
    const int64_t batch = parallel_.shard_batch(options_.batch_size(), "autoencoder.batch_size");
    optimizer_->zero_grad();
    auto loss = parallel_.accumulate(streams, [&](RandomStreams& shard) {
      const auto x = target_->sample(batch, shard["data"]).to(device_);
      return (reconstruct(x) - x).square().mean();
    });
    auto params = optimizer_->param_groups()[0].params();
    parallel_.average_gradients(params);
    const double value = loss.item<double>();
    if (!std::isfinite(value)) {
      return {{"reconstruction_mse", value}};  // the run stops here, before any update
    }
    optimizer_->step();
    return {{"reconstruction_mse", value}};
  }

  bool data_parallel() const override {
    return true;
  }

  // Reconstructions of n data draws; the draws are kept for evaluate().
  torch::Tensor sample(int64_t n, at::Generator& gen, bool /*ema*/) override {
    torch::NoGradGuard no_grad;
    drawn_ = target_->sample(n, gen).to(device_);
    reconstructed_ = in_chunks(drawn_, [&](const torch::Tensor& c) { return reconstruct(c); });
    return reconstructed_;
  }

  // The mean squared error per pixel of the evaluation's samples against the draws they
  // reconstruct (the ones whose FID is reported); of fresh draws when given other samples.
  std::vector<EvalRow> evaluate(const torch::Tensor& samples, at::Generator& gen) override {
    torch::NoGradGuard no_grad;
    const bool same = reconstructed_.defined() && samples.sizes() == reconstructed_.sizes() &&
                      torch::equal(samples.to(reconstructed_.options()), reconstructed_);
    if (!same) {
      sample(samples.size(0), gen, false);
    }
    const auto mse = (reconstructed_ - drawn_).square().mean().item<double>();
    drawn_ = reconstructed_ = torch::Tensor();
    return {{"reconstruction_mse", mse}};
  }

  void save(torch::serialize::OutputArchive& archive) override {
    write_state(archive, "encoder", *encoder_);
    write_state(archive, "decoder", *decoder_);
    write_state(archive, "optimizer", *optimizer_);
  }
  void load(torch::serialize::InputArchive& archive) override {
    read_state(archive, "encoder", *encoder_);
    read_state(archive, "decoder", *decoder_);
    read_state(archive, "optimizer", *optimizer_);
  }

  WeightGroups export_weights() override {
    return {{"encoder", named_tensors(*encoder_)}, {"decoder", named_tensors(*decoder_)}};
  }
  void import_weights(const WeightGroups& weights) override {
    for (const char* group : {"encoder", "decoder"}) {
      if (weights.find(group) == weights.end()) {
        throw ConfigError(std::string("weights lack the group '") + group + "' (" + group +
                          ".safetensors)");
      }
    }
    load_named_tensors(*encoder_, weights.at("encoder"), "encoder");
    load_named_tensors(*decoder_, weights.at("decoder"), "decoder");
    encoder_->to(device_);
    decoder_->to(device_);
  }

  std::map<std::string, double> learning_rates() const override {
    return {{"lr", options_.lr()}};
  }

 private:
  static std::vector<int64_t> image_shape_of(const Problem& problem) {
    if (!problem.is_image() || !problem.target) {
      throw ConfigError(
          "method 'autoencoder' learns images, and the data set is not an image data set");
    }
    return problem.image_shape;
  }

  torch::Tensor reconstruct(const torch::Tensor& x) {
    return decoder_->forward(encoder_->forward(x));
  }

  AutoencoderOptions options_;
  std::shared_ptr<const Dataset> target_;
  DataParallel parallel_;
  torch::Device device_;
  DcganEncoder encoder_;
  DcganDecoder decoder_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  torch::Tensor drawn_, reconstructed_;  // the last sample(): data draws and their reconstructions
};

// The checksum of an autoencoder run's weights: SHA-256 of the files' names and SHA-256s.
std::string weights_sha256(const fs::path& final_dir) {
  std::string listing;
  for (const char* file : {"encoder.safetensors", "decoder.safetensors"}) {
    listing += std::string(file) + " " + sha256_file((final_dir / file).string()) + "\n";
  }
  return sha256_hex(listing);
}

}  // namespace

AutoencoderOptions AutoencoderOptions::from_json(const Json& c) {
  AutoencoderOptions o;
  o.width(positive_int(c, "autoencoder.width"))
      .nz(positive_int(c, "autoencoder.nz"))
      .batch_size(positive_int(c, "autoencoder.batch_size"))
      .lr(positive_number(c, "autoencoder.lr"));
  return o;
}

Json AutoencoderOptions::to_json() const {
  return Json{{"autoencoder",
               {{"width", width()}, {"nz", nz()}, {"batch_size", batch_size()}, {"lr", lr()}}}};
}

DcganOptions AutoencoderOptions::nets(const std::vector<int64_t>& image_shape) const {
  return DcganOptions(image_shape).width(width()).nz(nz());
}

void register_autoencoder(MethodRegistry& registry) {
  registry.add("autoencoder",
               "convolutional autoencoder of images (autoencoder.nz, autoencoder.width); other "
               "runs work in its latent space through latent.run",
               [] {
                 return MethodEntry{[](const MethodContext& ctx) -> std::unique_ptr<Method> {
                                      return std::make_unique<Autoencoder>(ctx);
                                    },
                                    [] {
                                      Json defaults = AutoencoderOptions().to_json();
                                      defaults["train"] = {{"steps", 3000}};
                                      return defaults;
                                    }};
               });
}

LatentSpace::LatentSpace(std::string run_dir, std::string sha256, AutoencoderOptions options,
                         std::vector<int64_t> image_shape)
    : run_dir_(std::move(run_dir)),
      sha256_(std::move(sha256)),
      options_(options),
      image_shape_(std::move(image_shape)),
      encoder_(options_.nets(image_shape_)),
      decoder_(options_.nets(image_shape_)) {}

std::shared_ptr<const LatentSpace> LatentSpace::load(const std::string& run_dir,
                                                     const std::string& sha256) {
  const auto dir = fs::absolute(run_dir).lexically_normal();
  const auto final_dir = dir / "final";
  const std::string what = "latent.run '" + run_dir + "'";
  if (!fs::is_regular_file(final_dir / "encoder.safetensors") ||
      !fs::is_regular_file(final_dir / "decoder.safetensors")) {
    throw ConfigError(what +
                      " is not a finished autoencoder run (no final/encoder.safetensors and "
                      "final/decoder.safetensors)");
  }
  const Json config = read_run_config(dir.string());
  if (config.value("method", "") != "autoencoder") {
    throw ConfigError(what + " is a run of method '" + config.value("method", "") +
                      "', not of 'autoencoder'");
  }
  const Json meta = read_run_meta(dir.string());
  const auto shape = meta["problem"]["image_shape"].get<std::vector<int64_t>>();
  const auto actual = weights_sha256(final_dir);
  if (!sha256.empty() && sha256 != actual) {
    throw ConfigError(what + ": its weights are not the ones this run started with (sha256 " +
                      actual + ", recorded " + sha256 + ")");
  }
  std::shared_ptr<LatentSpace> space(
      new LatentSpace(dir.string(), actual, AutoencoderOptions::from_json(config), shape));
  try {
    load_named_tensors(*space->encoder_,
                       load_safetensors((final_dir / "encoder.safetensors").string()), "encoder");
    load_named_tensors(*space->decoder_,
                       load_safetensors((final_dir / "decoder.safetensors").string()), "decoder");
  } catch (const ConfigError& e) {
    throw ConfigError(what + ": " + e.what());
  }
  space->encoder_->eval();
  space->decoder_->eval();
  return space;
}

int64_t LatentSpace::data_dim() const {
  return image_shape_[0] * image_shape_[1] * image_shape_[2];
}

torch::Tensor LatentSpace::encode(const torch::Tensor& x) const {
  return in_chunks(x.to(torch::kCPU, torch::kFloat32),
                   [&](const torch::Tensor& c) { return encoder_->forward(c); });
}

torch::Tensor LatentSpace::decode(const torch::Tensor& z) const {
  return in_chunks(z.to(torch::kCPU, torch::kFloat32),
                   [&](const torch::Tensor& c) { return decoder_->forward(c); });
}

std::shared_ptr<const Dataset> LatentSpace::encode_dataset(const Dataset& images) const {
  torch::Tensor x;
  if (const auto* set = dynamic_cast<const ImageSet*>(&images)) {
    x = set->images();
  } else if (const auto* points = dynamic_cast<const TensorDataset*>(&images)) {
    x = points->points();
  }
  if (!x.defined() || images.image_shape() != image_shape_) {
    throw ConfigError("latent.run '" + run_dir_ +
                      "' encodes a finite image set of the autoencoder's image shape, and the "
                      "run's data is not one");
  }
  return std::make_shared<TensorDataset>(encode(x));
}

}  // namespace uotflow
