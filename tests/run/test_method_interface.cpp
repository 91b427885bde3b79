// A method defined and registered in this file alone trains through train() with phases,
// checkpoints, exact resume, evaluation and sampling: adding a method needs no edit of the run
// loop or the CLI.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "run_checks.h"
#include "uotflow/io/safetensors.h"
#include "uotflow/methods/method.h"
#include "uotflow/run/run.h"

namespace fs = std::filesystem;
using namespace uotflow;
using uotflow::testing::expect_same_weights;
using uotflow::testing::fresh_test_dir;
using uotflow::testing::read_jsonl;

namespace {

// Learns the data mean m by Adam on |m - batch mean|^2; samples are m + N(0, I). Its phases each
// halve the learning rate.
class MeanShift : public Method {
 public:
  explicit MeanShift(const MethodContext& ctx)
      : target_(ctx.problem.target),
        n_phases_(get<int64_t>(ctx.config, "mean_shift.n_phases")),
        iterations_(get<int64_t>(ctx.config, "mean_shift.iterations")),
        lr_(get<double>(ctx.config, "mean_shift.lr")),
        mean_(torch::zeros({ctx.problem.dim}).requires_grad_(true)),
        optimizer_({mean_}, torch::optim::AdamOptions(lr_)) {}

  std::vector<Phase> phases() const override {
    std::vector<Phase> out;
    for (int64_t k = 1; k <= n_phases_; ++k) {
      out.push_back(Phase{k * iterations_, std::numeric_limits<double>::quiet_NaN()});
    }
    return out;
  }
  std::map<std::string, double> step(int64_t step, RandomStreams& streams) override {
    static_cast<torch::optim::AdamOptions&>(optimizer_.param_groups()[0].options())
        .lr(lr_ / std::pow(2.0, static_cast<double>(step / iterations_)));
    auto batch = target_->sample(64, streams["data"]);
    auto loss = (mean_ - batch.mean(0)).pow(2).sum();
    optimizer_.zero_grad();
    loss.backward();
    optimizer_.step();
    return {{"loss", loss.item<double>()}};
  }
  torch::Tensor sample(int64_t n, at::Generator& gen, bool) override {
    return mean_.detach() + torch::randn({n, mean_.size(0)}, gen);
  }
  std::vector<EvalRow> evaluate(const torch::Tensor&, at::Generator&) override {
    return {{"mean_norm", mean_.detach().norm().item<double>()}};
  }
  void save(torch::serialize::OutputArchive& archive) override {
    archive.write("mean", mean_.detach());
    torch::serialize::OutputArchive opt;
    optimizer_.save(opt);
    archive.write("optimizer", opt);
  }
  void load(torch::serialize::InputArchive& archive) override {
    torch::Tensor mean;
    archive.read("mean", mean);
    torch::NoGradGuard no_grad;
    mean_.copy_(mean);
    torch::serialize::InputArchive opt;
    archive.read("optimizer", opt);
    optimizer_.load(opt);
  }
  WeightGroups export_weights() override {
    return {{"model", {{"mean", mean_.detach().clone()}}}};
  }
  void import_weights(const WeightGroups& weights) override {
    torch::NoGradGuard no_grad;
    mean_.copy_(weights.at("model").at("mean"));
  }

 private:
  std::shared_ptr<const Dataset> target_;
  int64_t n_phases_, iterations_;
  double lr_;
  torch::Tensor mean_;
  torch::optim::Adam optimizer_;
};

void register_mean_shift() {
  if (!method_registry().contains("mean_shift")) {
    method_registry().add("mean_shift", "test: learns the data mean", [] {
      return MethodEntry{[](const MethodContext& ctx) -> std::unique_ptr<Method> {
                           return std::make_unique<MeanShift>(ctx);
                         },
                         [] {
                           return Json{
                               {"mean_shift", {{"n_phases", 2}, {"iterations", 40}, {"lr", 0.2}}},
                               {"train", {{"steps", 0}, {"checkpoint_every", 15}}}};
                         }};
    });
  }
}

Json mean_shift_config(const std::vector<std::string>& sets = {}) {
  register_mean_shift();
  std::vector<std::string> all = {"data.name=gaussian", "data.params={\"mean\": [3.0, -1.0]}",
                                  "eval.n=500", "eval.metrics=[\"sw2\", \"mean_error\"]"};
  all.insert(all.end(), sets.begin(), sets.end());
  return resolve_config(Json{{"method", "mean_shift"}, {"seed", 5}}, all, {});
}

TEST(MethodInterface, ATestOnlyMethodTrainsEvaluatesResumesAndSamples) {
  TrainOptions options;
  options.out_root = fresh_test_dir().string();
  const auto whole = train(mean_shift_config(), options);
  EXPECT_EQ(whole.step, 80);
  // It learnt: the samples' mean is the data's.
  auto x = sample_run(whole.run_dir, 4000, 0, false);
  EXPECT_LT((x.mean(0) - torch::tensor({3.0f, -1.0f})).abs().max().item<float>(), 0.15);
  // Evaluations at the end of each phase carry the run's metrics and the method's own row.
  int phase_rows = 0;
  for (const auto& row : read_jsonl(whole.run_dir + "/eval.jsonl")) {
    if (row.contains("phase") && row["metric"] == "mean_norm") {
      ++phase_rows;
    }
  }
  EXPECT_EQ(phase_rows, 2);
  for (const char* file : {"samples/phase-0001.npy", "samples/phases.png", "plots/sw2.png",
                           "phases/phase-0000/model.safetensors", "final/model.safetensors",
                           "checkpoints/step-00000080.ckpt", "metrics.jsonl", "target.json"}) {
    EXPECT_TRUE(fs::exists(whole.run_dir + "/" + file)) << file;
  }
  // A run stopped in phase 0 (its last checkpoint at step 30), resumed, ends bit-identical.
  const auto part = train(mean_shift_config({"mean_shift.n_phases=1"}), options);
  fs::remove(part.run_dir + "/checkpoints/step-00000040.ckpt");
  auto rest = load_run_config(part.run_dir);
  rest["mean_shift"]["n_phases"] = 2;
  TrainOptions resume = options;
  resume.resume_dir = part.run_dir;
  EXPECT_EQ(train(rest, resume).step, 80);
  expect_same_weights(whole.run_dir + "/final/model.safetensors",
                      part.run_dir + "/final/model.safetensors");
}

}  // namespace
