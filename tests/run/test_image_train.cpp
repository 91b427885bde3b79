// Image runs end to end: a CI-sized Fashion-MNIST UOTM run whose classifier FID must fall, sample
// grids, per-seed PNGs, fid-ref statistics, S-JKO phases on images and config errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "checks.h"
#include "cli_runner.h"
#include "run_checks.h"
#include "uotflow/core/error.h"
#include "uotflow/features/features.h"
#include "uotflow/io/files.h"
#include "uotflow/io/npy.h"
#include "uotflow/io/sha256.h"
#include "uotflow/methods/autoencoder.h"
#include "uotflow/methods/method.h"
#include "uotflow/run/run.h"
#include "uotflow_build_info.h"

namespace uotflow {
namespace {

namespace fs = std::filesystem;
using testing::expect_config_error;
using testing::fresh_test_dir;
using testing::last_line;
using testing::read_jsonl;
using testing::run_cli;

const std::string kConfigDir = std::string(UOTFLOW_SOURCE_DIR) + "/configs/image/";

// configs/image/NAME shrunk to CI size: 5000 training images, width-16 nets, batch 32, a 300-step
// classifier, 500-sample evaluations.
Json ci_config(const std::string& name, const std::vector<std::string>& sets = {}) {
  std::vector<std::string> all = {"data.params.limit=5000",
                                  "generator.width=16",
                                  "potential.width=16",
                                  "train.batch_size=32",
                                  "train.checkpoint_every=100",
                                  "eval.n=500",
                                  "eval.features.classifier.steps=300",
                                  "seed=11"};
  all.insert(all.end(), sets.begin(), sets.end());
  return resolve_config(read_json_file(kConfigDir + name), all, {});
}

std::string train_in(const fs::path& dir, const Json& config) {
  TrainOptions options;
  options.out_root = dir.string();
  return train(config, options).run_dir;
}

// The values of one metric in eval.jsonl, in step order.
std::vector<double> metric_values(const std::string& run, const std::string& metric) {
  std::vector<double> out;
  for (const auto& row : read_jsonl(run + "/eval.jsonl")) {
    if (row["metric"] == metric) {
      out.push_back(row["value"].get<double>());
    }
  }
  return out;
}

void check_fid_falls(const std::string& run) {
  const auto fid = metric_values(run, "classifier_fid");
  ASSERT_EQ(fid.size(), 3u) << "at the start, at step 150 and at step 300";
  EXPECT_GT(fid.front(), 300.0) << "an untrained generator";
  EXPECT_LT(fid.back(), fid.front() / 3.0) << fid.front() << " -> " << fid.back();
  const auto kid = metric_values(run, "classifier_kid");
  ASSERT_EQ(kid.size(), 3u);
  EXPECT_LT(kid.back(), kid.front() / 3.0);

  // Every record names the extractor, which is kept with the run.
  const auto classifier = run + "/extractor/classifier.safetensors";
  const auto info = read_json_file(run + "/extractor/classifier.json");
  EXPECT_GT(info["accuracy"].get<double>(), 0.7);
  for (const auto& row : read_jsonl(run + "/eval.jsonl")) {
    EXPECT_EQ(row["extractor"], "classifier");
    EXPECT_EQ(row["extractor_sha256"], sha256_file(classifier));
    EXPECT_EQ(row["n"], 500);
  }
}

void check_snapshots(const std::string& run) {
  for (const char* tag : {"step-0000150", "step-0000300", "final"}) {
    const auto x = load_npy(run + "/samples/" + tag + ".npy");
    EXPECT_EQ(x.sizes(), (std::vector<int64_t>{64, 784})) << tag;
    EXPECT_TRUE(fs::exists(run + "/samples/" + tag + ".png")) << tag;
  }
  // 8 x 8 tiles of 56 px (28 px at 2x) with 2 px padding: a 466-px square, below a 23-px band
  // with the title ("RUN: final").
  const auto png = read_file(run + "/samples/final.png");
  ASSERT_GT(png.size(), 24u);
  const auto be32 = [&](size_t at) {
    return (static_cast<uint32_t>(static_cast<unsigned char>(png[at])) << 24) |
           (static_cast<uint32_t>(static_cast<unsigned char>(png[at + 1])) << 16) |
           (static_cast<uint32_t>(static_cast<unsigned char>(png[at + 2])) << 8) |
           static_cast<uint32_t>(static_cast<unsigned char>(png[at + 3]));
  };
  EXPECT_EQ(be32(16), 466u);
  EXPECT_EQ(be32(20), 466u + 23u);
  // The final snapshot is the same seed as step 300 with the same weights.
  EXPECT_TRUE(torch::equal(load_npy(run + "/samples/final.npy"),
                           load_npy(run + "/samples/step-0000300.npy")));
}

void check_sample_seeds(const fs::path& root, const std::string& run) {
  const auto out = root / "seeds";
  auto result = run_cli("sample --run " + run + " --seeds 0-3,9 --out " + out.string());
  ASSERT_EQ(result.code, 0) << result.output;
  for (const char* name : {"seed-000000.png", "seed-000001.png", "seed-000002.png",
                           "seed-000003.png", "seed-000009.png"}) {
    EXPECT_TRUE(fs::exists(out / name)) << name;
  }
  EXPECT_FALSE(fs::exists(out / "seed-000004.png"));
  const auto alone = root / "alone";
  ASSERT_EQ(run_cli("sample --run " + run + " --seeds 2 --out " + alone.string()).code, 0);
  EXPECT_EQ(read_file((out / "seed-000002.png").string()),
            read_file((alone / "seed-000002.png").string()));
  EXPECT_NE(read_file((out / "seed-000002.png").string()),
            read_file((out / "seed-000003.png").string()));
  // The seed's image is `sample --n 1 --seed S`.
  const auto seeds = sample_run_seeds(run, {2}, true);
  EXPECT_TRUE(torch::equal(seeds.samples, sample_run(run, 1, 2, true)));
  EXPECT_EQ(seeds.image_shape, (std::vector<int64_t>{1, 28, 28}));

  auto bad = run_cli("sample --run " + run + " --seeds 5-2 --out " + out.string());
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(last_line(bad.output).find("--seeds"), std::string::npos) << bad.output;
}

void check_fid_ref(const fs::path& root, const std::string& run) {
  const auto classifier = run + "/extractor/classifier.safetensors";
  const auto stats = (root / "fmnist.npz").string();
  auto result = run_cli("fid-ref --data fashion_mnist --params '{\"limit\": 2000}' --extractor " +
                        classifier + " --out " + stats);
  ASSERT_EQ(result.code, 0) << result.output;
  const auto report = parse_json(last_line(result.output), "fid-ref output");
  EXPECT_EQ(report["n"], 2000);
  EXPECT_EQ(report["extractor_sha256"], sha256_file(classifier));
  const auto loaded = load_reference_stats(stats);
  EXPECT_EQ(loaded.gaussian.mean.numel(), 128);
  EXPECT_EQ(loaded.extractor_sha256, sha256_file(classifier));

  // A run using those statistics (and that classifier) records FIDs against them.
  const auto dir = root / "with-stats";
  const auto later = train_in(
      dir,
      ci_config("uotm_fashion_mnist.json",
                {"train.steps=2", "train.eval_every=1", "eval.features.extractor=" + classifier,
                 "eval.features.reference=" + stats, "eval.features.metrics=[\"fid\"]"}));
  const auto fid = metric_values(later, "classifier_fid");
  ASSERT_EQ(fid.size(), 3u);
  EXPECT_FALSE(fs::exists(later + "/extractor")) << "a given extractor is not retrained";

  // Statistics of another extractor are refused before training.
  ReferenceStats other = loaded;
  other.extractor_sha256 = std::string(64, '0');
  save_reference_stats(stats, other);
  expect_config_error(
      [&] {
        train_in(dir, ci_config(
                          "uotm_fashion_mnist.json",
                          {"train.steps=2", "eval.features.extractor=" + classifier,
                           "eval.features.reference=" + stats, "eval.features.metrics=[\"fid\"]"}));
      },
      "stats of another extractor", "sha256");
}

// One CI-sized UOTM run on Fashion-MNIST (about a minute), then everything that reads it: ctest
// runs each test in its own process, so the checks share one test.
TEST(ImageTrain, CiSizedFashionMnistRunLearnsAndItsOutputsWork) {
  const auto root = fresh_test_dir();
  const auto run = train_in(root, ci_config("uotm_fashion_mnist.json",
                                            {"train.steps=300", "train.eval_every=150",
                                             "train.snapshot_every=150", "train.ema_decay=0.98"}));
  {
    SCOPED_TRACE("classifier FID falls");
    check_fid_falls(run);
  }
  {
    SCOPED_TRACE("snapshots");
    check_snapshots(run);
  }
  {
    SCOPED_TRACE("sample --seeds");
    check_sample_seeds(root, run);
  }
  {
    SCOPED_TRACE("fid-ref");
    check_fid_ref(root, run);
  }
}

TEST(ImageSjko, PhasesOnImagesKeepEveryNthWeightsAndDrawAPhaseStrip) {
  const auto dir = fresh_test_dir();
  const auto run =
      train_in(dir, ci_config("sjko_fashion_mnist.json",
                              {"sjko.n_phases=3", "sjko.init_iterations=6", "sjko.iterations=4",
                               "train.phase_weights_every=2", "eval.features.metrics=[]",
                               "eval.at_start=false", "train.checkpoint_every=5"}));
  EXPECT_TRUE(fs::exists(run + "/samples/phases.png"));
  for (const char* phase : {"phase-0000", "phase-0001", "phase-0002"}) {
    EXPECT_TRUE(fs::exists(run + "/samples/" + std::string(phase) + ".png")) << phase;
  }
  EXPECT_FALSE(fs::exists(run + "/phases/phase-0000"));
  EXPECT_TRUE(fs::exists(run + "/phases/phase-0001/generator_ema.safetensors"));
  EXPECT_TRUE(fs::exists(run + "/phases/phase-0002/generator_ema.safetensors")) << "the last";
  EXPECT_EQ(sample_run(run, 3, 0, true, 1).sizes(), (std::vector<int64_t>{3, 784}));
  expect_config_error([&] { sample_run(run, 3, 0, true, 0); }, "skipped phase",
                      "phase_weights_every");
}

// configs/image/swjko_fashion_mnist.json (SW-JKO towards the data set with a convolutional
// generator in the ambient space) shrunk to CI size: 5000 images, a width-16 decoder, `phases` JKO
// steps of `iterations`, 500-sample evaluations, a 300-step classifier.
Json flow_ci_config(int64_t phases, int64_t iterations, const std::vector<std::string>& sets = {}) {
  std::vector<std::string> all = {"functional.params.data.params.limit=5000",
                                  "parametrization.conv_generator.width=16",
                                  "swjko.n_phases=" + std::to_string(phases),
                                  "swjko.iterations=" + std::to_string(iterations),
                                  "train.checkpoint_every=" + std::to_string(iterations),
                                  "eval.n=500",
                                  "eval.features.classifier.steps=300",
                                  "seed=11"};
  all.insert(all.end(), sets.begin(), sets.end());
  return resolve_config(read_json_file(kConfigDir + "swjko_fashion_mnist.json"), all, {});
}

// A flow towards an image data set is evaluated and drawn as a generative model: classifier FID
// and KID at the start and at the end of each JKO step, a grid per step and the phase strip.
TEST(ImageFlow, CiSizedAmbientFlowImprovesClassifierFidThreefold) {
  const auto dir = fresh_test_dir();
  const auto run = train_in(dir, flow_ci_config(3, 60));
  const auto fid = metric_values(run, "classifier_fid");
  ASSERT_EQ(fid.size(), 4u) << "at the start and at the end of each of 3 JKO steps";
  EXPECT_GT(fid.front(), 300.0) << "an untrained decoder";
  EXPECT_LT(fid.back(), fid.front() / 3.0) << fid.front() << " -> " << fid.back();
  const auto kid = metric_values(run, "classifier_kid");
  ASSERT_EQ(kid.size(), 4u);
  EXPECT_LT(kid.back(), kid.front() / 3.0);
  // The flow's own rows are kept beside them, on its SW-time axis.
  const auto sw2 = metric_values(run, "sw2_data");
  ASSERT_EQ(sw2.size(), 4u);
  EXPECT_LT(sw2.back(), sw2.front() / 2.0);
  for (const auto& row : read_jsonl(run + "/eval.jsonl")) {
    if (row["metric"] == "classifier_fid" && row["step"] != 0) {
      EXPECT_TRUE(row.contains("phase")) << row.dump();
    }
  }
  EXPECT_TRUE(fs::exists(run + "/samples/phases.png"));
  EXPECT_TRUE(fs::exists(run + "/plots/classifier_fid.png"));
  EXPECT_EQ(load_npy(run + "/samples/final.npy").sizes(), (std::vector<int64_t>{64, 784}));
  // A finished flow samples as images in [-1, 1], from its final and from a phase's weights.
  const auto x = sample_run(run, 5, 0, false);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{5, 784}));
  EXPECT_LE(x.abs().max().item<double>(), 1.0);
  EXPECT_FALSE(torch::equal(sample_run(run, 5, 0, false, 0), x));
}

namespace {

// A flow of 4 JKO steps of 5 iterations (checkpoints every 3) trained whole, and trained for 2
// steps, its step-10 checkpoint removed, then resumed from step 9 to 4 steps: the same phase-3
// samples and final weights, bit for bit.
void expect_exact_resume_inside_a_jko_step(const fs::path& dir, const Json& config) {
  const auto whole = train_in(dir, config);
  auto half = config;
  half["swjko"]["n_phases"] = 2;
  const auto part = train_in(dir, half);
  fs::remove(part + "/checkpoints/step-00000010.ckpt");
  ASSERT_TRUE(fs::exists(part + "/checkpoints/step-00000009.ckpt"));
  auto rest = load_run_config(part);
  rest["swjko"]["n_phases"] = 4;
  TrainOptions resume;
  resume.resume_dir = part;
  EXPECT_EQ(train(rest, resume).step, 20);
  EXPECT_TRUE(torch::equal(load_npy(whole + "/samples/phase-0003.npy"),
                           load_npy(part + "/samples/phase-0003.npy")));
  for (const auto& e : fs::directory_iterator(whole + "/final")) {
    testing::expect_same_weights(e.path().string(),
                                 part + "/final/" + e.path().filename().string());
  }
}

}  // namespace

// The convolutional generator resumes bit for bit from a checkpoint inside a JKO step.
TEST(ImageFlow, ConvGeneratorResumesExactlyInsideAJkoStep) {
  const auto dir = fresh_test_dir();
  auto config = flow_ci_config(
      4, 5,
      {"functional.params.data.params.limit=300", "parametrization.conv_generator.width=8",
       "parametrization.conv_generator.nz=8", "swjko.batch_size=32", "swjko.n_projections=50",
       "functional.params.n_projections=50", "train.checkpoint_every=3", "eval.n=64",
       "eval.features.metrics=[]"});
  expect_exact_resume_inside_a_jko_step(dir, config);
}

// An autoencoder run, then a flow in its latent space that names it: the flow's samples are
// decoded for the FID and the pictures, the run records the autoencoder's path and checksum, and
// changed autoencoder weights are refused on resume and when sampling.
TEST(ImageFlow, CiSizedLatentFlowUsesAnAutoencoderRunAndImprovesClassifierFidThreefold) {
  const auto dir = fresh_test_dir();
  const auto autoencoder =
      train_in(dir, resolve_config(read_json_file(kConfigDir + "autoencoder_fashion_mnist.json"),
                                   {"data.params.limit=5000", "autoencoder.width=16",
                                    "autoencoder.nz=16", "train.steps=300", "train.eval_every=150",
                                    "train.snapshot_every=150", "eval.n=500", "eval.at_start=true",
                                    "eval.features.classifier.steps=300", "seed=11"},
                                   {}));
  const auto mse = metric_values(autoencoder, "reconstruction_mse");
  ASSERT_EQ(mse.size(), 3u) << "at the start, at step 150 and at step 300";
  EXPECT_LT(mse.back(), mse.front() / 4.0) << mse.front() << " -> " << mse.back();
  const auto floor = metric_values(autoencoder, "classifier_fid");
  ASSERT_EQ(floor.size(), 3u);
  EXPECT_TRUE(fs::exists(autoencoder + "/final/encoder.safetensors"));
  EXPECT_TRUE(fs::exists(autoencoder + "/samples/final.png"));

  auto flow_config = resolve_config(
      read_json_file(kConfigDir + "swjko_latent_fashion_mnist.json"),
      {"latent.run=" + autoencoder, "functional.params.data.params.limit=5000", "swjko.n_phases=3",
       "swjko.iterations=60", "swjko.batch_size=256", "train.checkpoint_every=30", "eval.n=500",
       // The autoencoder run's classifier, not a second one.
       "eval.features.extractor=" + autoencoder + "/extractor/classifier.safetensors", "seed=11"},
      {});
  const auto flow = train_in(dir, flow_config);
  const auto fid = metric_values(flow, "classifier_fid");
  ASSERT_EQ(fid.size(), 4u) << "at the start and at the end of each of 3 JKO steps";
  EXPECT_LT(fid.back(), fid.front() / 3.0) << fid.front() << " -> " << fid.back();
  EXPECT_GT(fid.back(), 0.5 * floor.back()) << "below the autoencoder's own reconstructions";
  EXPECT_EQ(load_npy(flow + "/samples/final.npy").sizes(), (std::vector<int64_t>{64, 784}));
  EXPECT_TRUE(fs::exists(flow + "/samples/phases.png"));
  const auto recorded = load_run_config(flow)["latent"];
  EXPECT_EQ(recorded["run"], fs::absolute(autoencoder).lexically_normal().string());
  EXPECT_EQ(recorded["sha256"].get<std::string>().size(), 64u);
  const auto x = sample_run(flow, 4, 0, false);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{4, 784}));
  EXPECT_LE(x.abs().max().item<double>(), 1.0);
  // Inputs given to a latent problem's map are images of the data space, encoded on the way in;
  // codes are refused with the image shapes named.
  {
    Problem problem;
    problem.latent = LatentSpace::load(autoencoder, "");
    problem.dim = problem.latent->dim();
    const auto images = torch::rand({3, 1, 28, 28}) * 2 - 1;
    EXPECT_TRUE(
        torch::equal(problem.inputs(images), problem.latent->encode(images.reshape({3, 784}))));
    expect_config_error(
        [&] {
          problem.inputs(torch::zeros({2, 16}));
        },
        "codes as inputs", "[n, 784] or [n, 1, 28, 28]");
  }

  // A latent flow resumes bit for bit from a checkpoint inside a JKO step (the codes re-encoded
  // from the same autoencoder weights on resume).
  {
    auto small = resolve_config(
        read_json_file(kConfigDir + "swjko_latent_fashion_mnist.json"),
        {"latent.run=" + autoencoder, "functional.params.data.params.limit=300",
         "functional.params.n_projections=50", "parametrization.realnvp.width=16",
         "parametrization.realnvp.couplings=2", "swjko.n_phases=4", "swjko.iterations=5",
         "swjko.batch_size=32", "swjko.n_projections=50", "train.checkpoint_every=3", "eval.n=64",
         "eval.at_start=false", "eval.features.metrics=[]", "seed=12"},
        {});
    expect_exact_resume_inside_a_jko_step(dir, small);
  }

  // Changed autoencoder weights: one byte of the decoder's last tensor.
  {
    auto bytes = read_file(autoencoder + "/final/decoder.safetensors");
    bytes[bytes.size() - 2] ^= 0x10;
    write_file_atomic(autoencoder + "/final/decoder.safetensors", bytes);
  }
  expect_config_error([&] { sample_run(flow, 4, 0, false); }, "sampling", "sha256");
  auto more = load_run_config(flow);
  more["swjko"]["n_phases"] = 4;
  TrainOptions resume;
  resume.resume_dir = flow;
  expect_config_error([&] { train(more, resume); }, "resume", "not the ones this run started with");
  const auto refused =
      run_cli("sample --run " + flow + " --n 4 --out " + (dir / "refused.npy").string());
  EXPECT_EQ(refused.code, 2);
  EXPECT_NE(last_line(refused.output).find("latent.run"), std::string::npos) << refused.output;
}

TEST(ImageTrainConfig, ConfigErrorsNameTheKey) {
  const auto dir = fresh_test_dir();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"train.autocast=fp8"}, "train.autocast"},
      {{"train.autocast=bf16"}, "CUDA only"},
      {{"eval.features.metrics=[\"is\"]"}, "eval.features.metrics"},
      {{"eval.features.extractor=missing.pt"}, "eval.features.extractor"},
      {{"eval.features.reference=missing.npz"}, "eval.features.reference"},
      {{"generator.net=ncsnpp", "generator.resblock=ddpm"}, "resblock"},
  };
  for (const auto& [sets, mentions] : cases) {
    auto all = sets;
    all.push_back("train.steps=1");
    expect_config_error([&] { train_in(dir, ci_config("uotm_fashion_mnist.json", all)); }, mentions,
                        mentions);
  }
  expect_config_error(
      [&] {
        train_in(dir, resolve_config(Json{{"data", {{"name", "8gaussians"}}}},
                                     {"eval.features.metrics=[\"fid\"]"}, {}));
      },
      "feature metrics on points", "image data set");
  // outlier_fraction needs a classifier with an "outlier" class: Fashion-MNIST has none.
  expect_config_error(
      [&] {
        train_in(dir, ci_config("uotm_fashion_mnist.json",
                                {"train.steps=1", "data.params.limit=300",
                                 "eval.features.classifier.steps=5",
                                 "eval.features.metrics=[\"outlier_fraction\"]"}));
      },
      "no outlier class", "outlier");
  // A convolutional generator needs a flow whose points are images.
  expect_config_error(
      [&] {
        train_in(dir, resolve_config(read_json_file(std::string(UOTFLOW_SOURCE_DIR) +
                                                    "/configs/flow/swgf_ou_d2.json"),
                                     {"parametrization.name=conv_generator"}, {}));
      },
      "conv_generator on points", "not images");
  expect_config_error(
      [&] {
        train_in(dir, resolve_config(Json{{"method", "autoencoder"}, {"data", {{"name", "moons"}}}},
                                     {}, {}));
      },
      "autoencoder on points", "not an image data set");
  expect_config_error(
      [&] {
        train_in(dir, resolve_config(read_json_file(kConfigDir + "swjko_latent_fashion_mnist.json"),
                                     {"latent.run=" + (dir / "no-such-run").string()}, {}));
      },
      "latent.run without a run", "not a finished autoencoder run");
}

}  // namespace
}  // namespace uotflow
