// The interface every method (UOTM, S-JKO, SW-JKO, ...) implements, what a run transports from and
// to (Problem), the random streams of a run, and the method registry. The run loop (run/) drives a
// Method and knows nothing of generators, potentials, priors or functionals.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/serialize/archive.h>
#include <torch/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "uotflow/core/config.h"
#include "uotflow/core/distributed.h"
#include "uotflow/core/registry.h"
#include "uotflow/data/dataset.h"
#include "uotflow/flow/functional.h"

namespace uotflow {

class LatentSpace;  // methods/autoencoder.h

/// What a run transports: from a source measure mu (the Gaussian prior, or any data set) to a
/// target, which is a data set nu or, for a gradient flow, the minimiser of a functional F.
/// Built in one place from the config's "source", "data" and "functional" sections
/// (make_problem); every method reads it.
struct Problem {
  int64_t dim = 0;                         ///< D of a sample
  std::vector<int64_t> image_shape;        ///< [C, H, W] when a sample is an image, else empty
  std::shared_ptr<const Dataset> source;   ///< mu: what a generator maps, or a flow's rho_0;
                                           ///< null for a finished run loaded to map given inputs
  std::shared_ptr<const Dataset> target;   ///< nu: the data (for a flow, its functional's data
                                           ///< term, sw_data); null for a flow of a functional
                                           ///< without one and for a finished run loaded only
                                           ///< to sample
  std::shared_ptr<Functional> functional;  ///< a flow's F; null for generative models
  /// The source is a data set of the user's (the config's "source" is not the Gaussian prior or a
  /// flow's Gaussian rho_0): runs of a method that maps inputs are then translations, and report
  /// the map's transport cost and class preservation (run/).
  bool translation = false;
  /// The latent space the method works in (a finished autoencoder run's, config "latent.run"),
  /// or null. Then dim is its dimension, target (or the functional's data) the codes of the
  /// data set, and the run decodes samples for metrics and pictures (data_space()).
  std::shared_ptr<const LatentSpace> latent;
  /// With a latent space: the data set before encoding (images).
  std::shared_ptr<const Dataset> data_target;

  bool is_image() const {
    return !image_shape.empty();
  }
  /// The problem as the run's outputs see it: this one, or for a problem in a latent space, the
  /// data space (its dim and image shape, the images as the target, no functional).
  Problem data_space() const;
  /// The method's samples [n, dim] in the data space: decoded when the problem is latent (CPU).
  torch::Tensor to_data_space(const torch::Tensor& x) const;
  /// A ConfigError unless 1 <= n and n samples (in the method's space and the data space) fit in
  /// this machine's memory; `what` names the count in the message ("--n", "sample: n").
  void check_sample_count(int64_t n, const std::string& what) const;
  /// The Gaussian the run ends at when it is known: the minimiser of a flow's F, or the target
  /// data's.
  GaussianParams target_gaussian() const;
  /// Given source points as the run's maps take them: x [n, D], or [n, C, H, W] for images, of
  /// any real dtype -> [n, D] float32 (CPU). A wrong shape, an empty or a non-finite input is
  /// a ConfigError naming it.
  torch::Tensor inputs(const torch::Tensor& x) const;
};

/// The random streams of a run by name ("data", "noise", "flow", ...), each derived from the run's
/// seed on first use, so that a method adding a stream does not shift another. Every stream's
/// state is part of each checkpoint.
///
/// A run's batches may be split into shards (data parallel: train.shards, each process drawing
/// its own): shard k draws from streams of its own, derived from (seed, k). With one shard, the
/// shard's streams are the run's streams themselves, so a run of one shard draws as it always did.
class RandomStreams {
 public:
  explicit RandomStreams(uint64_t seed, int64_t shards = 1);
  /// The run's stream `name`: the same on every process (initial weights, a particle flow's noise).
  at::Generator& operator[](const std::string& name);
  /// The streams of shard k (< shards()): what shard k's part of a batch is drawn from.
  RandomStreams& shard(int64_t k);
  int64_t shards() const {
    return shards_.empty() ? 1 : static_cast<int64_t>(shards_.size());
  }
  /// Every stream (with shards: "rng/NAME" and "rng/shard-K/NAME"); load() reads what the archive
  /// holds, and leaves a stream it does not hold (a shard a run of fewer shards had no stream of)
  /// at its seed's start.
  void save(torch::serialize::OutputArchive& archive);
  void load(torch::serialize::InputArchive& archive);
  /// The streams of shards [first, first + count) alone (what one process of a data-parallel run
  /// holds that the others do not), and back.
  void save_shards(torch::serialize::OutputArchive& archive, int64_t first, int64_t count);
  void load_shards(torch::serialize::InputArchive& archive);

 private:
  void save_own(torch::serialize::OutputArchive& archive, const std::string& prefix);
  uint64_t seed_;
  std::map<std::string, at::Generator> streams_;
  std::vector<std::unique_ptr<RandomStreams>> shards_;  ///< empty with one shard
};

/// How a method's steps are spread over shards and processes (data parallel). The global batch of
/// the config is split into shards() equal parts; this process computes the parts of its own
/// shards [first_shard(), first_shard() + local_shards()), each from that shard's streams, and
/// the gradients are averaged over all of them: over a process's shards by accumulation, over
/// processes by an all-reduce (Collective). So N processes of one shard each, and one process of
/// N shards, take the same steps (up to the order of float sums).
///
///   optimizer->zero_grad();
///   auto loss = parallel_.accumulate(streams, [&](RandomStreams& shard) {
///     auto x = data->sample(parallel_.shard_batch(batch), shard["data"]);
///     return objective(x);  // a scalar
///   });
///   parallel_.average_gradients(parameters);
///   optimizer->step();
class DataParallel {
 public:
  DataParallel() = default;  ///< one process, one shard
  /// `shards` (0: one per process) must be a multiple of the number of processes.
  DataParallel(std::shared_ptr<const Collective> collective, int64_t shards);

  int64_t shards() const {
    return shards_;
  }
  int64_t local_shards() const {
    return local_;
  }
  int64_t first_shard() const {
    return first_;
  }
  /// More than one shard: the run is data parallel (a method must support it).
  bool active() const {
    return shards_ > 1;
  }
  /// One shard's part of a global batch; a batch that does not split evenly is a ConfigError
  /// naming `key`.
  int64_t shard_batch(int64_t batch, const std::string& key = "the batch size") const;
  /// For each local shard: loss = objective(its streams), and the gradients of loss /
  /// local_shards() added up (one backward per shard). Returns the mean loss (detached).
  torch::Tensor accumulate(RandomStreams& streams,
                           const std::function<torch::Tensor(RandomStreams&)>& objective) const;
  /// The gradients averaged over the processes (a no-op in one process). Every process calls it
  /// at the same points of a step, even when its own loss is not finite.
  void average_gradients(const std::vector<torch::Tensor>& parameters) const;

 private:
  std::shared_ptr<const Collective> collective_;
  int64_t shards_ = 1;
  int64_t local_ = 1;
  int64_t first_ = 0;
};

/// Named groups of named tensors, e.g. {"generator": {"trunk.input.weight": ...}}: what final/
/// holds, one safetensors file per group.
using WeightGroups = std::map<std::string, std::map<std::string, torch::Tensor>>;

/// One phase of a phased method: a JKO step of S-JKO or SW-JKO.
struct Phase {
  int64_t end_step = 0;  ///< steps done when the phase ends (the last phase ends the run)
  /// W-time t at the end of the phase of the Fokker-Planck (KL) flow the phases follow, so that a
  /// Gaussian target can be checked against the closed form; NaN when they follow no such flow.
  double flow_time = 0.0;
};

/// One eval.jsonl row a method adds to the run's own evaluation.
struct EvalRow {
  std::string metric;
  double value = 0.0;
  Json extra = Json::object();  ///< more fields of the row (e.g. {"time": t})
};

/// The means over a process's shards of what a step logs (one shard: the values themselves).
///
///   ShardMeans logged(parallel_);
///   ... inside the objective of each shard: logged.add("sw2", sw);
///   return logged.values();  // {"sw2": mean over the shards}
class ShardMeans {
 public:
  explicit ShardMeans(const DataParallel& parallel)
      : weight_(1.0 / static_cast<double>(parallel.local_shards())) {}
  void add(const std::string& name, const torch::Tensor& value);
  void clear() {
    sums_.clear();
  }
  std::map<std::string, double> values() const;

 private:
  double weight_;
  std::map<std::string, torch::Tensor> sums_;
};

/// A method: it owns its networks (or particles), optimisers and EMA, and does one optimisation
/// step at a time. The run loop owns the run directory, config, checkpoints and resume, logs,
/// evaluation and snapshots, phases, signals, the non-finite stop and the final weights.
///
///   class Mine : public Method { ... };
///   method_registry().add("mine", "my method", [] {
///     return MethodEntry{[](const MethodContext& ctx) { return std::make_unique<Mine>(ctx); },
///                        [] { return Json{{"mine", {{"rate", 0.1}}}}; }};
///   });
class Method {
 public:
  virtual ~Method() = default;

  /// The phases of the run, in order; empty for a method without phases. A phased method fixes
  /// the run's length (train.steps stays 0). The run writes samples, an evaluation, a checkpoint
  /// and phase_weights() at the end of each phase.
  virtual std::vector<Phase> phases() const {
    return {};
  }

  /// One optimisation step (`step` counts from 0), drawing only from `streams`. Returns named
  /// scalar losses for the logs; a non-finite one stops the run.
  virtual std::map<std::string, double> step(int64_t step, RandomStreams& streams) = 0;

  /// n samples of the current model: [n, D] on the method's device (particles: all of them, n
  /// ignored), with the EMA weights when `ema` and has_ema().
  virtual torch::Tensor sample(int64_t n, at::Generator& gen, bool ema) = 0;
  virtual bool has_ema() const {
    return false;
  }

  /// True when the method maps given source points (transport()): a generator T(x, z), or the
  /// composed maps of a phased method. Particles and generators of noise do not.
  virtual bool maps_inputs() const {
    return false;
  }
  /// The images of given source points x [n, D] (on the method's device) under the current map:
  /// row i of the result [n, D] is the image of row i of x. The map's own noise (the z of
  /// T(x, z)) is drawn from `gen`; EMA weights when `ema` and has_ema(). For a method that
  /// maps_inputs(), sample(n, gen, ema) is transport(x, gen, ema) of x drawn from the source with
  /// `gen` first. Others raise a ConfigError.
  virtual torch::Tensor transport(const torch::Tensor& x, at::Generator& gen, bool ema);

  /// Rows of the method's own checks, added to each evaluation. samples: [N, D] (CPU) as drawn
  /// by the run for this evaluation; `gen` may be drawn from.
  virtual std::vector<EvalRow> evaluate(const torch::Tensor& /*samples*/, at::Generator& /*gen*/) {
    return {};
  }

  /// Full training state (nets, EMA, optimisers, phase) for exact resume.
  virtual void save(torch::serialize::OutputArchive& archive) = 0;
  virtual void load(torch::serialize::InputArchive& archive) = 0;

  /// Weights for final/ (CPU tensors) and back, for sampling a finished run.
  virtual WeightGroups export_weights() = 0;
  virtual void import_weights(const WeightGroups& weights) = 0;
  /// The groups written at the end of each phase to phases/phase-KKKK/ (`sample --phase K`);
  /// all of export_weights() unless a method keeps less.
  virtual WeightGroups phase_weights() {
    return export_weights();
  }

  /// Current learning rates by name, for the logs.
  virtual std::map<std::string, double> learning_rates() const {
    return {};
  }

  /// True when the method spreads its steps as MethodContext::parallel says (draws each shard's
  /// part of a batch from the shard's streams and averages gradients through it); a run of
  /// several shards or processes refuses a method that does not.
  virtual bool data_parallel() const {
    return false;
  }
};

/// What a method is built from.
struct MethodContext {
  const Json& config;  ///< the fully resolved config
  const Problem& problem;
  torch::Device device;
  DataParallel parallel{};  ///< the shards and processes of the run (default: one of each)
};

/// A registered method: a factory, the config sections it adds to (or changes in) the run's
/// defaults, and which target it transports to.
struct MethodEntry {
  std::function<std::unique_ptr<Method>(const MethodContext&)> create;
  std::function<Json()> default_sections;  ///< e.g. {"sjko": {...}, "loss": {...}}
  /// True: the target is a data set (config section "data"); false: a functional ("functional").
  bool target_is_data = true;
  /// The config key of the method's number of JKO steps (what `uotflow flow --steps` sets), e.g.
  /// "swjko.n_phases"; empty for a method without JKO steps.
  std::string jko_steps_key;
  /// Keys of earlier versions of the method's sections and their names now ("" = dropped), e.g.
  /// {"flow.n_steps", "swjko.n_phases"}: configs and --set of those versions still resolve.
  std::vector<std::pair<std::string, std::string>> renamed_keys;
  /// Sections that name this method in a config of an earlier version that has no "method".
  std::vector<std::string> implied_by_sections;
};
using MethodRegistry = Registry<MethodEntry()>;
/// uotm, sjko, swjko; tests and programs may add their own.
MethodRegistry& method_registry();

/// The default "source" section: a data-set section, N(0, I) in the problem's dimension.
Json default_source_section();

/// The shape of a problem's samples, as a run's config.json records it.
struct ProblemShape {
  int64_t dim = 0;
  std::vector<int64_t> image_shape;
  /// false: the source is not built either (a finished run loaded to map given inputs, whose
  /// source file may be gone).
  bool with_source = true;
};
/// Builds the problem of a resolved config: the source, and the target data set (or the
/// functional) of its method. `target` replaces the "data" section (for a flow: the data set of
/// its functional's data term) and `source` the "source"
/// section when given (data sets held in memory). With `shape` given instead of a target, the
/// data set is not built at all (to sample a finished run): dim and image_shape come from it.
Problem make_problem(const Json& config, std::shared_ptr<const Dataset> target = nullptr,
                     const ProblemShape* shape = nullptr,
                     std::shared_ptr<const Dataset> source = nullptr);

}  // namespace uotflow
