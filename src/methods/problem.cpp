// The problem a run transports (source -> target), built from the config in one place, and the
// run's named random streams.
#include <torch/torch.h>

#include "uotflow/core/device.h"
#include "uotflow/core/error.h"
#include "uotflow/core/rng.h"
#include "uotflow/data/tensor_dataset.h"
#include "uotflow/io/run_dir.h"
#include "uotflow/methods/autoencoder.h"
#include "uotflow/methods/method.h"

namespace uotflow {

GaussianParams Problem::target_gaussian() const {
  // A flow's data term (sw_data) is not the minimiser of F when other terms are summed with it.
  if (functional) {
    return functional->gaussian_target();
  }
  return target ? target->gaussian() : GaussianParams{};
}

Problem Problem::data_space() const {
  if (!latent) {
    return *this;
  }
  Problem out = *this;
  out.dim = latent->data_dim();
  out.image_shape = latent->image_shape();
  out.target = data_target;
  out.functional = nullptr;
  out.latent = nullptr;
  out.data_target = nullptr;
  return out;
}

torch::Tensor Problem::to_data_space(const torch::Tensor& x) const {
  return latent ? latent->decode(x) : x;
}

void Problem::check_sample_count(int64_t n, const std::string& what) const {
  if (n < 1) {
    throw ConfigError(what + " must be > 0, got " + std::to_string(n));
  }
  const auto data_dim = latent ? latent->data_dim() : dim;
  // A lower bound: the samples, and their copy in the data space.
  check_fits_in_memory(
      what + " = " + std::to_string(n) + " samples of dimension " + std::to_string(data_dim),
      2.0 * static_cast<double>(n) * static_cast<double>(dim + data_dim) * sizeof(float));
}

torch::Tensor Problem::inputs(const torch::Tensor& x) const {
  if (latent) {
    return latent->encode(data_space().inputs(x));  // images in, their codes out
  }
  std::string expected = "[n, " + std::to_string(dim) + "]";
  bool fits = x.dim() == 2 && x.size(1) == dim;
  if (is_image()) {
    expected += " or [n, " + std::to_string(image_shape[0]) + ", " +
                std::to_string(image_shape[1]) + ", " + std::to_string(image_shape[2]) + "]";
    fits = fits || (x.dim() == 4 && x.size(1) == image_shape[0] && x.size(2) == image_shape[1] &&
                    x.size(3) == image_shape[2]);
  }
  if (!fits) {
    throw ConfigError("the inputs have shape " + shape_text(x.sizes()) + "; this run maps " +
                      expected);
  }
  if (x.size(0) == 0) {
    throw ConfigError("the inputs hold no points");
  }
  if (x.is_complex() || x.scalar_type() == torch::kBool) {
    throw ConfigError("the inputs must be real numbers, got " +
                      std::string(c10::toString(x.scalar_type())));
  }
  auto points = x.reshape({x.size(0), dim}).to(torch::kCPU, torch::kFloat32).contiguous();
  if (!torch::isfinite(points).all().item<bool>()) {
    throw ConfigError("the inputs hold NaN or infinite values");
  }
  return points;
}

RandomStreams::RandomStreams(uint64_t seed, int64_t shards) : seed_(seed) {
  if (shards < 1) {
    throw ConfigError("a run needs at least one shard, got " + std::to_string(shards));
  }
  if (shards > 1) {
    for (int64_t k = 0; k < shards; ++k) {
      shards_.push_back(
          std::make_unique<RandomStreams>(derive_seed(seed, "shard", static_cast<uint64_t>(k))));
    }
  }
}

at::Generator& RandomStreams::operator[](const std::string& name) {
  auto it = streams_.find(name);
  if (it == streams_.end()) {
    it = streams_.emplace(name, make_stream(seed_, name)).first;
  }
  return it->second;
}

RandomStreams& RandomStreams::shard(int64_t k) {
  TORCH_CHECK(k >= 0 && k < shards(), "shard ", k, " of ", shards());
  return shards_.empty() ? *this : *shards_[static_cast<size_t>(k)];
}

void RandomStreams::save_own(torch::serialize::OutputArchive& archive, const std::string& prefix) {
  for (auto& [name, gen] : streams_) {
    save_generator_state(archive, prefix + name, gen);
  }
}

void RandomStreams::save(torch::serialize::OutputArchive& archive) {
  save_own(archive, "rng/");
  save_shards(archive, 0, shards_.size());
}

void RandomStreams::save_shards(torch::serialize::OutputArchive& archive, int64_t first,
                                int64_t count) {
  for (int64_t k = first; k < first + count && k < static_cast<int64_t>(shards_.size()); ++k) {
    shards_[static_cast<size_t>(k)]->save_own(archive, "rng/shard-" + std::to_string(k) + "/");
  }
}

void RandomStreams::load(torch::serialize::InputArchive& archive) {
  for (const auto& key : archive.keys()) {
    if (key.rfind("rng/", 0) == 0 && key.rfind("rng/shard-", 0) != 0) {
      load_generator_state(archive, key, (*this)[key.substr(4)]);
    }
  }
  load_shards(archive);
}

void RandomStreams::load_shards(torch::serialize::InputArchive& archive) {
  const std::string prefix = "rng/shard-";
  for (const auto& key : archive.keys()) {
    if (key.rfind(prefix, 0) != 0) {
      continue;
    }
    const auto slash = key.find('/', prefix.size());
    const auto k = std::stoll(key.substr(prefix.size(), slash - prefix.size()));
    if (!shards_.empty() && k < static_cast<int64_t>(shards_.size())) {
      load_generator_state(archive, key, (*shards_[static_cast<size_t>(k)])[key.substr(slash + 1)]);
    }
  }
}

DataParallel::DataParallel(std::shared_ptr<const Collective> collective, int64_t shards)
    : collective_(std::move(collective)) {
  const int64_t world = collective_ ? collective_->world_size() : 1;
  const int64_t rank = collective_ ? collective_->rank() : 0;
  shards_ = shards == 0 ? world : shards;
  if (shards_ < 1 || shards_ % world != 0) {
    throw ConfigError("train.shards must be 0 (one per process) or a positive multiple of the " +
                      std::to_string(world) + " processes, got " + std::to_string(shards));
  }
  local_ = shards_ / world;
  first_ = rank * local_;
}

int64_t DataParallel::shard_batch(int64_t batch, const std::string& key) const {
  if (batch % shards_ != 0) {
    throw ConfigError(key + " " + std::to_string(batch) + " does not split into " +
                      std::to_string(shards_) + " equal shards (train.shards, or one per " +
                      "process); make it a multiple of " + std::to_string(shards_));
  }
  return batch / shards_;
}

torch::Tensor DataParallel::accumulate(
    RandomStreams& streams, const std::function<torch::Tensor(RandomStreams&)>& objective) const {
  if (local_ == 1) {
    auto loss = objective(streams.shard(first_));
    loss.backward();
    return loss.detach();
  }
  torch::Tensor sum;
  for (int64_t k = first_; k < first_ + local_; ++k) {
    auto loss = objective(streams.shard(k));
    (loss / static_cast<double>(local_)).backward();
    sum = sum.defined() ? sum + loss.detach() : loss.detach();
  }
  return sum / static_cast<double>(local_);
}

void ShardMeans::add(const std::string& name, const torch::Tensor& value) {
  auto v = value.detach() * weight_;
  auto [it, fresh] = sums_.emplace(name, v);
  if (!fresh) {
    it->second = it->second + v;
  }
}

std::map<std::string, double> ShardMeans::values() const {
  std::map<std::string, double> out;
  for (const auto& [name, sum] : sums_) {
    out[name] = sum.item<double>();
  }
  return out;
}

void DataParallel::average_gradients(const std::vector<torch::Tensor>& parameters) const {
  if (collective_) {
    collective_->average_gradients(parameters);
  }
}

Json default_source_section() {
  Json section = default_data_section();
  section["name"] = "gaussian";
  return section;
}

namespace {

// A "gaussian" source without its own dimension takes the problem's.
Json source_section(const Json& config, int64_t dim) {
  Json section = at_path(config, "source");
  if (section.value("name", "") != "gaussian") {
    return section;
  }
  Json& params = section["params"];
  if (params.is_null()) {
    params = Json::object();
  }
  const bool sized = params.contains("dim") || params.contains("covariance") ||
                     params.contains("precision") ||
                     (params.contains("mean") && params["mean"].is_array());
  if (!sized && params.is_object()) {
    params["dim"] = dim;
  }
  return section;
}

}  // namespace

Problem make_problem(const Json& config, std::shared_ptr<const Dataset> target,
                     const ProblemShape* shape, std::shared_ptr<const Dataset> source) {
  const auto method = get<std::string>(config, "method");
  const MethodEntry entry = method_registry().create(method);
  Problem problem;
  if (config.contains("latent") && !get<std::string>(config, "latent.run").empty()) {
    problem.latent = LatentSpace::load(get<std::string>(config, "latent.run"),
                                       get<std::string>(config, "latent.sha256"));
  } else if (config.contains("latent") && at_path(config, "latent").value("required", false)) {
    throw ConfigError(
        "latent.run is empty, but this config works in the latent space of an autoencoder run "
        "(latent.required): name a finished one with --set latent.run=runs/NNNNN-autoencoder-...");
  }
  // In a latent space the method sees the codes of the data set; a finished run loaded to sample
  // (shape given) needs neither.
  auto encoded = [&](std::shared_ptr<const Dataset> images) -> std::shared_ptr<const Dataset> {
    problem.data_target = images;
    return problem.latent->encode_dataset(*images);
  };
  if (entry.target_is_data) {
    if (target) {
      problem.target = std::move(target);
    } else if (shape == nullptr) {
      problem.target = make_dataset(at_path(config, "data"));
    }
    if (problem.latent) {
      problem.target = problem.target ? encoded(problem.target) : nullptr;
      problem.dim = problem.latent->dim();
    } else {
      problem.dim = problem.target ? problem.target->dim() : shape->dim;
      problem.image_shape = problem.target ? problem.target->image_shape() : shape->image_shape;
    }
  } else {
    const auto requested = get<int64_t>(config, "dim");
    if (requested < 0) {
      throw ConfigError("config key 'dim' must be >= 0 (0 = the functional's own)");
    }
    const auto name = get<std::string>(config, "functional.name");
    const Json& section = at_path(config, "functional");
    FunctionalInputs inputs{requested, target};
    if (problem.latent && shape != nullptr) {
      // Sampling a finished latent flow: its data term is not evaluated; one zero code stands in.
      inputs.data = std::make_shared<TensorDataset>(torch::zeros({1, problem.latent->dim()}));
    } else if (problem.latent) {
      inputs.map_data = encoded;  // the data term compares with the codes of its data set
    }
    problem.functional = make_functional(section, inputs);
    if (problem.latent && shape == nullptr && !problem.data_target) {
      throw ConfigError("latent.run: functional '" + name +
                        "' has no data set to encode (a flow in a latent space goes towards "
                        "data: functional 'sw_data')");
    }
    problem.dim = requested != 0 ? requested : problem.functional->dim();
    if (problem.dim == 0) {
      throw ConfigError("functional '" + name + "' does not fix a dimension; set 'dim'");
    }
    // A flow towards a data set (sw_data): the run evaluates and draws it as a generative model.
    problem.target = problem.functional->data();
    if (target && !problem.target) {
      throw ConfigError("functional '" + name +
                        "' compares with no data set, so the data given has no use (a flow "
                        "towards data uses functional 'sw_data')");
    }
    if (problem.latent) {
      problem.target = problem.data_target ? problem.target : nullptr;
    } else if (shape != nullptr) {
      problem.image_shape = shape->image_shape;
    } else if (problem.target) {
      problem.image_shape = problem.target->image_shape();
    }
  }
  problem.translation = source != nullptr || get<std::string>(config, "source.name") != "gaussian";
  if (source) {
    problem.source = std::move(source);
  } else if (shape == nullptr || shape->with_source) {
    problem.source = make_dataset(source_section(config, problem.dim), "source");
  }
  if (problem.source && problem.source->dim() != problem.dim) {
    throw ConfigError("the source ('" + get<std::string>(config, "source.name") + "') has dim " +
                      std::to_string(problem.source->dim()) + " but the target has dim " +
                      std::to_string(problem.dim));
  }
  return problem;
}

torch::Tensor Method::transport(const torch::Tensor& /*x*/, at::Generator& /*gen*/, bool /*ema*/) {
  throw ConfigError(
      "this method does not map given inputs (its samples are not images of source "
      "points); only methods with a map T(x, z), such as uotm and sjko, do");
}

}  // namespace uotflow
