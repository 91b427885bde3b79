// Config resolution across methods: every shipped config resolves through the one path, the keys of
// earlier versions are renamed (in files, --set and run directories), and run directories written
// by earlier versions still sample.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "checks.h"
#include "run_checks.h"
#include "uotflow/io/run_dir.h"
#include "uotflow/methods/method.h"
#include "uotflow/run/run.h"
#include "uotflow_build_info.h"

namespace fs = std::filesystem;
using namespace uotflow;
using uotflow::testing::expect_config_error;
using uotflow::testing::fresh_test_dir;

namespace {

TEST(RunConfig, EveryShippedConfigResolvesWithItsMethodsSections) {
  int count = 0;
  for (const auto& group : {"toy", "flow", "image"}) {
    for (const auto& e : fs::directory_iterator(fs::path(UOTFLOW_SOURCE_DIR) / "configs" / group)) {
      const auto file = read_json_file(e.path().string());
      const auto config = resolve_config(file, {}, {});
      const auto method = get<std::string>(config, "method");
      const bool data = method_registry().create(method).target_is_data;
      EXPECT_TRUE(config.contains(data ? "data" : "functional")) << e.path();
      EXPECT_TRUE(config.contains("source")) << e.path();
      Json copy = file;
      EXPECT_TRUE(migrate_config(copy).empty()) << e.path() << " uses legacy keys";
      ++count;
    }
  }
  EXPECT_GE(count, 25);
}

TEST(RunConfig, LegacyKeysAreRenamedInFilesAndSets) {
  const Json legacy{
      {"functional", {{"name", "entropy"}}},
      {"dim", 2},
      {"parametrization", {{"name", "particles"}, {"init", {{"mean", 0.5}, {"std", 0.2}}}}},
      {"flow", {{"n_steps", 7}, {"inner_iterations", 9}, {"lr_first", 0.3}}},
      {"eval", {{"keep_checkpoints", 2}, {"n_saved", 100}}}};
  const auto config = resolve_config(legacy, {"flow.lr=0.01"}, {});
  EXPECT_EQ(get<std::string>(config, "method"), "swjko");
  EXPECT_EQ(get<int64_t>(config, "swjko.n_phases"), 7);
  EXPECT_EQ(get<int64_t>(config, "swjko.iterations"), 9);
  EXPECT_DOUBLE_EQ(get<double>(config, "swjko.init_lr"), 0.3);
  EXPECT_DOUBLE_EQ(get<double>(config, "swjko.lr"), 0.01);
  EXPECT_DOUBLE_EQ(get<double>(config, "source.params.std"), 0.2);
  EXPECT_DOUBLE_EQ(get<double>(config, "source.params.mean"), 0.5);
  EXPECT_EQ(get<int64_t>(config, "train.keep_last"), 2);
  EXPECT_FALSE(config.contains("flow"));
  EXPECT_FALSE(config["parametrization"].contains("init"));
  const auto uotm = resolve_config(Json{{"prior", {{"std", 0.5}}}}, {}, {});
  EXPECT_DOUBLE_EQ(get<double>(uotm, "source.params.std"), 0.5);
  expect_config_error(
      [] {
        resolve_config(Json{{"prior", {{"std", 0.5}}}, {"source", {{"params", {{"std", 2.0}}}}}},
                       {}, {});
      },
      "old and new name both set", "both set");
}

TEST(RunConfig, ARunDirectoryOfAnEarlierVersionStillSamples) {
  const auto config = resolve_config(
      read_json_file(std::string(UOTFLOW_SOURCE_DIR) + "/configs/toy/uotm_8gaussians.json"),
      {"train.steps=20", "train.eval_every=0", "eval.n=100", "generator.width=16",
       "potential.width=16"},
      {});
  TrainOptions options;
  options.out_root = fresh_test_dir().string();
  const auto run = train(config, options).run_dir;
  const auto now = sample_run(run, 50, 3, true);
  // Rewrite config.json as earlier versions wrote it: prior.std, no source, no recorded shape.
  Json old = read_run_config(run);
  old.erase("source");
  old["prior"] = Json{{"std", 1.0}};
  old["meta"] = Json{{"uotflow_version", "0.1.0"}};
  std::ofstream(run + "/config.json") << old.dump(2);
  EXPECT_TRUE(torch::equal(sample_run(run, 50, 3, true), now));
}

}  // namespace
