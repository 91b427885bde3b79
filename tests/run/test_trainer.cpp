// Tests of the in-memory run handle (Trainer) and of the typed run options: stepping in memory,
// results that match a run kept on disk, resume through the handle, the caller's RNG left alone,
// and every default declared once (the options structs against what an empty config resolves to).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "run_checks.h"
#include "uotflow/core/error.h"
#include "uotflow/data/tensor_dataset.h"
#include "uotflow/io/safetensors.h"
#include "uotflow/methods/semidual_method.h"
#include "uotflow/methods/sjko.h"
#include "uotflow/methods/swjko.h"
#include "uotflow/nets/icnn.h"
#include "uotflow/nets/image_nets.h"
#include "uotflow/nets/nets.h"
#include "uotflow/nets/realnvp.h"
#include "uotflow/run/config.h"
#include "uotflow/run/run.h"
#include "uotflow/run/trainer.h"

namespace fs = std::filesystem;
using namespace uotflow;
using uotflow::testing::tiny_config;

namespace {

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(0);
    root_ = uotflow::testing::fresh_test_dir();
  }
  TrainOptions on_disk() const {
    TrainOptions o;
    o.out_root = (root_ / "runs").string();
    return o;
  }
  fs::path root_;
};

void expect_same_groups(const WeightGroups& a, const WeightGroups& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [group, tensors] : a) {
    ASSERT_TRUE(b.count(group)) << group;
    ASSERT_EQ(tensors.size(), b.at(group).size()) << group;
    for (const auto& [name, t] : tensors) {
      EXPECT_TRUE(torch::equal(t, b.at(group).at(name))) << group << "/" << name;
    }
  }
}

}  // namespace

TEST_F(TrainerTest, InMemoryRunMatchesTheRunOnDisk) {
  const auto cwd_before = fs::current_path();
  Trainer memory(tiny_config(30), nullptr, TrainOptions::in_memory());
  EXPECT_EQ(memory.step(12), 12);
  EXPECT_FALSE(memory.finished());
  EXPECT_EQ(memory.step(100), 30);  // stops at the run's end
  EXPECT_TRUE(memory.finished());
  EXPECT_TRUE(memory.run_dir().empty());
  EXPECT_FALSE(fs::exists(cwd_before / "log.txt"));

  auto disk = train(tiny_config(30), on_disk());
  expect_same_groups(
      memory.weights(),
      {{"generator", load_safetensors(disk.run_dir + "/final/generator.safetensors")},
       {"generator_ema", load_safetensors(disk.run_dir + "/final/generator_ema.safetensors")},
       {"potential", load_safetensors(disk.run_dir + "/final/potential.safetensors")}});
  // The same rows as the files: metrics every 5 steps, evaluations every 10 (the times differ).
  const auto metrics = uotflow::testing::read_jsonl(disk.run_dir + "/metrics.jsonl");
  ASSERT_EQ(memory.metrics().size(), metrics.size());
  for (size_t i = 0; i < metrics.size(); ++i) {
    EXPECT_EQ(memory.metrics()[i]["step"], metrics[i]["step"]);
    EXPECT_EQ(memory.metrics()[i]["loss_g"], metrics[i]["loss_g"]);
  }
  const auto evals = uotflow::testing::read_jsonl(disk.run_dir + "/eval.jsonl");
  ASSERT_EQ(memory.evaluations().size(), evals.size());
  for (size_t i = 0; i < evals.size(); ++i) {
    EXPECT_EQ(memory.evaluations()[i]["metric"], evals[i]["metric"]);
    EXPECT_DOUBLE_EQ(memory.evaluations()[i]["value"].get<double>(),
                     evals[i]["value"].get<double>());
  }
  // Samples of the handle are those `sample_run` draws from the finished run.
  EXPECT_TRUE(torch::equal(memory.sample(50, 7), sample_run(disk.run_dir, 50, 7, true)));
  EXPECT_FALSE(torch::equal(memory.sample(50, 7), memory.sample(50, 8)));
}

TEST_F(TrainerTest, SteppedResumeThroughTheHandleIsBitIdentical) {
  auto straight = train(tiny_config(40), on_disk());
  std::string dir;
  {
    Trainer first(tiny_config(40), nullptr, on_disk());
    first.step(17);  // off every schedule tick
    first.checkpoint();
    dir = first.run_dir();
  }  // the lock goes with the handle
  auto second = Trainer::resume(dir);
  EXPECT_EQ(second.current_step(), 17);
  EXPECT_EQ(second.metrics().size(), 3u);  // the rows of steps 5, 10, 15 are kept
  second.run();
  EXPECT_EQ(second.current_step(), 40);
  uotflow::testing::expect_same_final_weights(straight.run_dir, dir);

  // A finished run made longer: the change a resume may make, as the CLI's --resume --steps.
  const auto shorter = train(tiny_config(20), on_disk()).run_dir;
  auto longer = Trainer::resume(shorter, nullptr, TrainOptions(), {{"train.steps", 40}});
  EXPECT_EQ(longer.current_step(), 20);
  EXPECT_EQ(longer.total_steps(), 40);
  longer.run();
  uotflow::testing::expect_same_final_weights(straight.run_dir, shorter);
  EXPECT_THROW(Trainer::resume(shorter, nullptr, TrainOptions(), {{"seed", 1}}), ConfigError);
}

TEST_F(TrainerTest, TheCallersRandomNumbersAreLeftAlone) {
  torch::manual_seed(2024);
  const auto expected = torch::rand({8});
  torch::manual_seed(2024);
  Trainer trainer(tiny_config(10), nullptr, TrainOptions::in_memory());
  trainer.run();
  trainer.sample(10, 0);
  EXPECT_TRUE(torch::equal(torch::rand({8}), expected));

  // Building the method twice from the same seed gives the same initial weights, whatever the
  // global generator's state.
  torch::manual_seed(1);
  Trainer a(tiny_config(10), nullptr, TrainOptions::in_memory());
  torch::manual_seed(2);
  Trainer b(tiny_config(10), nullptr, TrainOptions::in_memory());
  expect_same_groups(a.weights(), b.weights());
}

TEST_F(TrainerTest, TypedOptionsAreTheConfig) {
  auto x = torch::randn({500, 2}) * 0.3 + 2.0;
  const auto options =
      RunOptions()
          .method("uotm")
          .seed(5)
          .schedule(ScheduleOptions().steps(60).eval_every(30))
          .eval(EvalOptions().metrics({"sw2", "mean_error"}).n(300))
          .sections(SemiDualOptions().batch_size(64).lr_g(1e-3).lr_d(1e-3).to_json());
  Trainer trainer(options, std::make_shared<TensorDataset>(x));
  trainer.run();
  EXPECT_EQ(trainer.current_step(), 60);
  EXPECT_EQ(get<int64_t>(trainer.config(), "train.batch_size"), 64);
  EXPECT_EQ(get<uint64_t>(trainer.config(), "seed"), 5u);
  EXPECT_EQ(trainer.evaluations().size(), 4u);  // 2 metrics at steps 30 and 60
  EXPECT_EQ(trainer.evaluate().size(), 2u);
  // Round trip: the options of a resolved config give that config back.
  EXPECT_EQ(RunOptions::from_json(trainer.config()).to_json(), trainer.config());
  // A phased method keeps its own length when the schedule's steps are left alone.
  const auto sjko = RunOptions().method("sjko").seed(1).to_json();
  EXPECT_EQ(get<int64_t>(sjko, "train.steps"), 0);
  // Errors name the key, before anything is built.
  EXPECT_THROW(Trainer(RunOptions().seed(1).schedule(ScheduleOptions().log_every(-1))),
               ConfigError);
  EXPECT_THROW(RunOptions().sections(Json{{"loss", {{"no_such_key", 1}}}}).to_json(), ConfigError);
  EXPECT_THROW(Trainer(RunOptions().seed(1).sections(Json{{"loss", {{"phi1", "nope"}}}})),
               ConfigError);
}

TEST_F(TrainerTest, EveryDefaultIsDeclaredOnce) {
  // The run's own sections: what an empty config resolves to is the structs' defaults.
  const Json uotm = resolve_config(Json{{"method", "uotm"}, {"seed", 0}}, {}, {});
  EXPECT_EQ(ScheduleOptions::from_json(uotm).to_json(), ScheduleOptions().to_json());
  EXPECT_EQ(EvalOptions::from_json(uotm).to_json(), EvalOptions().to_json());
  EXPECT_EQ(get<std::string>(uotm, "device"), RunOptions().device());
  EXPECT_EQ(get<int64_t>(uotm, "threads"), RunOptions().threads());
  // The methods' sections.
  const Json semidual = SemiDualOptions::from_json(uotm).to_json();
  EXPECT_EQ(semidual, SemiDualOptions().to_json());
  for (const auto& [section, value] : semidual.items()) {
    for (const auto& [key, v] : value.items()) {
      EXPECT_EQ(uotm[section][key], v) << section << "." << key;
    }
  }
  // S-JKO: its phases' section, and the semi-dual sections with the fixed source (phi1 linear).
  const Json sjko = resolve_config(Json{{"method", "sjko"}, {"seed", 0}}, {}, {});
  EXPECT_EQ(SjkoOptions::from_json(sjko).to_json(), SjkoOptions().to_json());
  EXPECT_EQ(sjko["sjko"], SjkoOptions().to_json()["sjko"]);
  EXPECT_EQ(SemiDualOptions::from_json(sjko).to_json(), SemiDualOptions().phi1("linear").to_json());
  const Json swjko = resolve_config(Json{{"method", "swjko"}, {"seed", 0}}, {}, {});
  EXPECT_EQ(SwjkoOptions::from_json(swjko).to_json(), SwjkoOptions().to_json());
  EXPECT_EQ(swjko["swjko"], SwjkoOptions().to_json()["swjko"]);
  // The RealNVP parametrization's keys are the flow's options struct's.
  const RealNVPOptions flow(2);
  EXPECT_EQ(swjko["parametrization"]["realnvp"], (Json{{"couplings", flow.couplings()},
                                                       {"width", flow.width()},
                                                       {"hidden_layers", flow.hidden_layers()}}));
}

// A net section resolves to its own net's defaults, declared by the net's options struct: a net
// built from the resolved section is the one built from {"net": N} alone (which reads the struct),
// dcgan gets DcganOptions' 64 channels and nz 100, not resnet_fc's 128 and 2.
TEST_F(TrainerTest, EveryNetSectionResolvesToItsOwnNetsDefaults) {
  const std::vector<std::pair<std::string, NetRole>> roles = {{"generator", NetRole::generator},
                                                              {"potential", NetRole::potential}};
  for (const auto& [section, role] : roles) {
    const auto names =
        role == NetRole::generator ? generator_registry().names() : potential_registry().names();
    for (const auto& net : names) {
      SCOPED_TRACE(section + " " + net);
      const Json in_file =
          resolve_config(Json{{"method", "uotm"}, {"seed", 0}, {section, {{"net", net}}}}, {}, {});
      EXPECT_EQ(in_file[section], default_net_section(role, net));
      const Json by_set =
          resolve_config(Json{{"method", "uotm"}, {"seed", 0}}, {section + ".net=" + net}, {});
      EXPECT_EQ(by_set[section], in_file[section]);
      const int64_t dim = in_file[section].contains("image_shape") ? 28 * 28 : 2;
      const auto shapes = [&](const Json& s) {
        std::map<std::string, std::vector<int64_t>> out;
        const auto tensors = role == NetRole::generator ? named_tensors(*make_generator(dim, s))
                                                        : named_tensors(*make_potential(dim, s));
        for (const auto& [name, t] : tensors) {
          out[name] = t.sizes().vec();
        }
        return out;
      };
      EXPECT_EQ(shapes(in_file[section]), shapes(Json{{"net", net}}));
    }
  }
  const Json dcgan = default_generator_section("dcgan");
  EXPECT_EQ(dcgan["width"], DcganOptions({}).width());
  EXPECT_EQ(dcgan["nz"], DcganOptions({}).nz());
  EXPECT_EQ(default_potential_section("icnn")["width"], IcnnOptions().width());
  EXPECT_EQ(default_generator_section(),
            (Json{{"net", "resnet_fc"}, {"width", 128}, {"depth", 3}, {"nz", 2}}));
  // A key another net reads is an error in a new config...
  EXPECT_THROW(resolve_config(Json{{"method", "uotm"}, {"generator", {{"nf", 32}}}}, {}, {}),
               ConfigError);
  // ...and dropped from the config of an earlier version, which held every net's keys.
  Json legacy{{"method", "uotm"},
              {"seed", 0},
              {"generator", {{"net", "resnet_fc"}, {"width", 64}, {"nf", 64}, {"centered", true}}},
              {"potential", {{"net", "small_conv"}, {"width", 128}, {"stddev_group", 2}}}};
  const Json migrated = resolve_config(legacy, {}, {});
  EXPECT_EQ(migrated["generator"],
            (Json{{"net", "resnet_fc"}, {"width", 64}, {"depth", 3}, {"nz", 2}}));
  EXPECT_FALSE(migrated["potential"].contains("width"));
  EXPECT_EQ(migrated["potential"]["stddev_group"], 2);
  EXPECT_EQ(migrate_config(legacy).size(), 3u);
}
