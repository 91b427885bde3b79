// Data-parallel training over c10d (Gloo on the loopback interface): the collectives themselves,
// N processes against one process of N shards (the same steps, bit for bit), and a process killed
// mid-run.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "checks.h"
#include "cli_runner.h"
#include "run_checks.h"
#include "uotflow/core/distributed.h"
#include "uotflow/core/error.h"
#include "uotflow/io/files.h"
#include "uotflow/io/safetensors.h"
#include "uotflow/methods/method.h"
#include "uotflow/run/trainer.h"

namespace fs = std::filesystem;

namespace uotflow {
namespace {

using testing::fresh_test_dir;
using testing::run_cli;
using testing::run_shell;

// A port for a test's store: derived from the process id, away from the ephemeral range.
int64_t test_port(int offset) {
  return 20000 + (getpid() * 7 + offset) % 9000;
}

// Runs `work(collective)` on two threads, as ranks 0 and 1 of one process group.
void on_two_ranks(const std::function<void(const Collective&)>& work, int port_offset = 0) {
  std::vector<std::thread> threads;
  std::vector<std::string> errors(2);
  for (int rank = 0; rank < 2; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        DistOptions o;
        o.rank = rank;
        o.world_size = 2;
        o.master_port = test_port(port_offset);
        o.timeout_seconds = 30;
        auto c = Collective::connect(o);
        work(*c);
      } catch (const std::exception& e) {
        errors[rank] = e.what();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
}

TEST(Distributed, CollectivesAverageBroadcastAndGatherAcrossTwoRanks) {
  on_two_ranks([](const Collective& c) {
    const double r = static_cast<double>(c.rank());
    EXPECT_EQ(c.world_size(), 2);
    const auto mean = c.average({r, 10.0 * r + 1.0});
    EXPECT_DOUBLE_EQ(mean[0], 0.5);
    EXPECT_DOUBLE_EQ(mean[1], 6.0);
    // Rank 0's bytes everywhere, of any length (zero bytes included).
    EXPECT_EQ(c.broadcast(c.is_root() ? std::string("root\0bytes", 10) : std::string("x")),
              std::string("root\0bytes", 10));
    EXPECT_EQ(c.broadcast(c.is_root() ? "" : "ignored"), "");
    // Every rank's bytes, in rank order, lengths differing.
    const auto all =
        c.all_gather(std::string(static_cast<size_t>(3 + 5 * c.rank()), 'a' + c.rank()));
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0], "aaa");
    EXPECT_EQ(all[1], "bbbbbbbb");
    // Gradients of two dtypes averaged in place; a parameter without a gradient left alone.
    auto w = torch::full({2, 3}, 1.0 + r, torch::requires_grad());
    auto v = torch::full({4}, 1.0, torch::dtype(torch::kFloat64).requires_grad(true));
    auto unused = torch::zeros({5}, torch::requires_grad());
    ((w * (1.0 + r)).sum() + (v * (2.0 * r)).sum()).backward();
    c.average_gradients({w, v, unused});
    EXPECT_TRUE(torch::allclose(w.grad(), torch::full({2, 3}, 1.5)));  // (1 + 2) / 2
    EXPECT_TRUE(torch::allclose(v.grad(), torch::full({4}, 1.0, torch::kFloat64)));
    EXPECT_FALSE(unused.grad().defined());
    c.barrier();
    EXPECT_GT(c.seconds_communicating(), 0.0);
  });
}

TEST(Distributed, ShardsSplitTheBatchAndEachDrawsFromItsOwnStreams) {
  // One process of 4 shards: shard k's streams differ from the run's and from each other's, and
  // are the ones a process whose first shard is k draws from.
  RandomStreams streams(7, 4);
  EXPECT_EQ(streams.shards(), 4);
  const auto run = torch::randn({3}, streams["data"]);
  std::vector<torch::Tensor> drawn;
  for (int64_t k = 0; k < 4; ++k) {
    drawn.push_back(torch::randn({3}, streams.shard(k)["data"]));
    EXPECT_FALSE(torch::equal(drawn.back(), run));
  }
  EXPECT_FALSE(torch::equal(drawn[0], drawn[1]));
  RandomStreams again(7, 4);
  EXPECT_TRUE(torch::equal(torch::randn({3}, again.shard(2)["data"]), drawn[2]));
  // One shard: the shard is the run's streams, so runs of one shard draw as they always did.
  RandomStreams one(7);
  EXPECT_EQ(&one.shard(0), &one);

  const DataParallel alone;
  EXPECT_FALSE(alone.active());
  EXPECT_EQ(alone.shard_batch(64), 64);
  const DataParallel four(std::make_shared<Collective>(), 4);
  EXPECT_TRUE(four.active());
  EXPECT_EQ(four.local_shards(), 4);
  EXPECT_EQ(four.shard_batch(64), 16);
  testing::expect_config_error([&] { four.shard_batch(66, "train.batch_size"); },
                               "train.batch_size 66 does not split into 4");
  testing::expect_config_error([] { DataParallel(std::make_shared<Collective>(), -1); },
                               "train.shards");
}

TEST(Distributed, AccumulatingShardsAveragesTheirGradients) {
  // The gradient of a process of 2 shards is the mean of the shards' gradients.
  auto w = torch::ones({3}, torch::requires_grad());
  RandomStreams streams(3, 2);
  const DataParallel two(std::make_shared<Collective>(), 2);
  std::vector<torch::Tensor> xs;
  auto loss = two.accumulate(streams, [&](RandomStreams& shard) {
    auto x = torch::randn({3}, shard["data"]);
    xs.push_back(x);
    return (w * x).sum().square();
  });
  ASSERT_EQ(xs.size(), 2u);
  auto expected = torch::zeros({3});
  double expected_loss = 0;
  for (const auto& x : xs) {
    const auto s = (torch::ones({3}) * x).sum();
    expected += 0.5 * 2 * s * x;
    expected_loss += 0.5 * s.square().item<double>();
  }
  EXPECT_TRUE(torch::allclose(w.grad(), expected));
  EXPECT_NEAR(loss.item<double>(), expected_loss, 1e-5);
}

// The resolved config of `config` in a file of the test's folder.
std::string write_config(const fs::path& dir, const std::string& name, const Json& config) {
  const auto path = dir / (name + ".json");
  write_file_atomic(path.string(), config.dump(2));
  return path.string();
}

std::string run_dir_named(const fs::path& out, const std::string& name) {
  for (const auto& entry : fs::directory_iterator(out)) {
    const auto file = entry.path().filename().string();
    if (file.size() > name.size() && file.substr(file.size() - name.size()) == name) {
      return entry.path().string();
    }
  }
  return "";
}

// Trains `config` with `--nproc 2` and as one process of two shards; expects the same weights.
void expect_two_processes_equal_two_shards(const Json& config) {
  const auto dir = fresh_test_dir();
  const auto path = write_config(dir, "config", config);
  const auto base = "train --config " + path + " --out " + dir.string();
  const auto two = run_cli(base + " --nproc 2 --name processes");
  ASSERT_EQ(two.code, 0) << two.output;
  const auto one = run_cli(base + " --set train.shards=2 --name shards");
  ASSERT_EQ(one.code, 0) << one.output;
  const auto a = run_dir_named(dir, "processes"), b = run_dir_named(dir, "shards");
  EXPECT_NE(read_file(a + "/log.txt").find("data parallel: 2 processes (gloo), 2 shards"),
            std::string::npos);
  int groups = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(a) / "final")) {
    if (entry.path().extension() == ".safetensors") {
      // Bit for bit: with two shards, each process's gradient is halved by the all-reduce and
      // each shard's by the accumulation, both exact in floating point (a power of two), and
      // a + b is the same sum in either order.
      testing::expect_same_weights(entry.path().string(),
                                   b + "/final/" + entry.path().filename().string());
      ++groups;
    }
  }
  EXPECT_GT(groups, 0);
  // The logged losses are the means over both shards, up to the order of float sums.
  const auto rows_a = testing::read_jsonl(a + "/metrics.jsonl");
  const auto rows_b = testing::read_jsonl(b + "/metrics.jsonl");
  ASSERT_EQ(rows_a.size(), rows_b.size());
  for (size_t i = 0; i < rows_a.size(); ++i) {
    for (const auto& [key, value] : rows_a[i].items()) {
      if (key.find("loss") != std::string::npos || key == "objective") {
        EXPECT_NEAR(value.get<double>(), rows_b[i][key].get<double>(),
                    1e-5 * (1.0 + std::abs(value.get<double>())))
            << key << " at row " << i;
      }
    }
  }
}

TEST(Distributed, TwoProcessesTakeTheStepsOfOneProcessOfTwoShardsUotm) {
  // UOTM with R1 and EMA, 20 steps of 2 potential updates each.
  auto config = testing::tiny_config(20);
  config["train"]["ema_decay"] = 0.9;
  config["eval"]["n"] = 0;
  expect_two_processes_equal_two_shards(config);
}

TEST(Distributed, TwoProcessesTakeTheStepsOfOneProcessOfTwoShardsSjkoAcrossAPhase) {
  // Phases of 20 + 15 steps: the second starts from the first's map, in both runs.
  auto config = testing::tiny_sjko({"eval.n=0"});
  expect_two_processes_equal_two_shards(config);
}

TEST(Distributed, TwoProcessesTakeTheStepsOfOneProcessOfTwoShardsSwjkoGenerator) {
  // SW-JKO with an MLP generator towards a data set: a loss (sliced W2 of sorted projections)
  // that is not a mean over samples, so each shard's loss is its own and their gradients average.
  Json file = {
      {"method", "swjko"},
      {"seed", 5},
      {"functional", {{"name", "sw_data"}, {"params", {{"data", {{"name", "8gaussians"}}}}}}},
      {"parametrization", {{"name", "generator"}}},
      {"swjko",
       {{"n_phases", 2},
        {"iterations", 10},
        {"batch_size", 128},
        {"n_projections", 50},
        {"jko_step_size", 0.1}}},
      {"eval", {{"n", 0}}}};
  expect_two_processes_equal_two_shards(resolve_config(file, {}, {}));
}

TEST(Distributed, AResumeWithAnotherNumberOfProcessesContinuesTheSameShards) {
  // Four shards: 20 steps in 2 processes, then 20 more in one process, equal 40 steps in 4.
  auto config = testing::tiny_config(40);
  config["train"]["shards"] = 4;
  config["eval"]["n"] = 0;
  const auto dir = fresh_test_dir();
  const auto path = write_config(dir, "config", config);
  const auto base = "train --config " + path + " --out " + dir.string();
  const auto first = run_cli(base + " --nproc 2 --steps 20 --name split");
  ASSERT_EQ(first.code, 0) << first.output;
  const auto split = run_dir_named(dir, "split");
  const auto second = run_cli("train --resume " + split + " --steps 40");
  ASSERT_EQ(second.code, 0) << second.output;
  const auto whole = run_cli(base + " --nproc 4 --name whole");
  ASSERT_EQ(whole.code, 0) << whole.output;
  // The same steps up to the order of float sums (4 gradients are added in another association
  // by 4 processes, by 2 of 2 shards and by 1 of 4): differences of float rounding, carried
  // through 40 Adam steps, far below the weights' own scale (about 0.1 to 1).
  const auto whole_dir = run_dir_named(dir, "whole");
  for (const auto& group : {"generator", "generator_ema", "potential"}) {
    const auto a = load_safetensors(split + "/final/" + group + ".safetensors");
    const auto b = load_safetensors(whole_dir + "/final/" + group + ".safetensors");
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [name, t] : a) {
      EXPECT_LT((t - b.at(name)).abs().max().item<double>(), 1e-4) << group << "/" << name;
    }
  }
  EXPECT_NE(read_file(split + "/log.txt").find("data parallel: 2 processes (gloo), 4 shards"),
            std::string::npos);
}

TEST(Distributed, ParticlesAndUnsupportedShardCountsAreRefusedBeforeAnythingStarts) {
  const auto dir = fresh_test_dir();
  const auto particles = run_cli("flow --config " + std::string(UOTFLOW_SOURCE_DIR) +
                                 "/configs/flow/swgf_particles_mixture_2d.json --set "
                                 "train.shards=2 --out " +
                                 dir.string());
  EXPECT_EQ(particles.code, 2) << particles.output;
  EXPECT_NE(particles.output.find("holds the whole measure"), std::string::npos)
      << particles.output;
  const auto odd =
      run_cli("train --set train.batch_size=65 --set train.shards=2 --out " + dir.string());
  EXPECT_EQ(odd.code, 2) << odd.output;
  EXPECT_NE(odd.output.find("train.batch_size 65 does not split into 2 equal shards"),
            std::string::npos)
      << odd.output;
  const auto both = run_shell("WORLD_SIZE=1 " + std::string(UOTFLOW_BINARY_DIR) +
                              "/uotflow train --nproc 2 --out " + dir.string() + " 2>&1");
  EXPECT_EQ(both.code, 2) << both.output;
  EXPECT_NE(both.output.find("--nproc starts the processes itself"), std::string::npos);
  const auto bad_env = run_shell("WORLD_SIZE=2 RANK=5 " + std::string(UOTFLOW_BINARY_DIR) +
                                 "/uotflow train --out " + dir.string() + " 2>&1");
  EXPECT_EQ(bad_env.code, 2) << bad_env.output;
  EXPECT_NE(bad_env.output.find("RANK='5' must be an integer in [0, 1]"), std::string::npos)
      << bad_env.output;
  EXPECT_TRUE(fs::is_empty(dir)) << "nothing is written for a refused run";
}

// Logs a finite loss, except at step 3 on the process that holds shard 1: a process whose own
// batch went non-finite while the others' did not.
class NanOnShardOne : public Method {
 public:
  explicit NanOnShardOne(const MethodContext& ctx) : parallel_(ctx.parallel) {}
  std::map<std::string, double> step(int64_t step, RandomStreams& /*streams*/) override {
    const bool holds_shard_one =
        parallel_.first_shard() <= 1 && 1 < parallel_.first_shard() + parallel_.local_shards();
    return {{"loss", holds_shard_one && step == 2 ? std::nan("") : 1.0}};
  }
  torch::Tensor sample(int64_t n, at::Generator& /*gen*/, bool /*ema*/) override {
    return torch::zeros({n, 2});
  }
  void save(torch::serialize::OutputArchive& /*archive*/) override {}
  void load(torch::serialize::InputArchive& /*archive*/) override {}
  WeightGroups export_weights() override {
    return {{"model", {{"w", torch::zeros({1})}}}};
  }
  void import_weights(const WeightGroups& /*weights*/) override {}
  bool data_parallel() const override {
    return true;
  }

 private:
  DataParallel parallel_;
};

TEST(Distributed, ANonFiniteLossOnOneProcessStopsEveryProcessAtTheSameStep) {
  if (!method_registry().contains("nan_on_shard_one")) {
    method_registry().add("nan_on_shard_one", "test: a non-finite loss on shard 1 at step 3", [] {
      return MethodEntry{[](const MethodContext& ctx) -> std::unique_ptr<Method> {
                           return std::make_unique<NanOnShardOne>(ctx);
                         },
                         [] {
                           return Json{{"train", {{"steps", 10}}}};
                         }};
    });
  }
  const auto config = resolve_config(
      Json{{"method", "nan_on_shard_one"}, {"seed", 1}, {"eval", {{"n", 0}}}}, {}, {});
  std::vector<std::string> errors(2);
  std::vector<int64_t> steps(2, -1);
  on_two_ranks(
      [&](const Collective& c) {
        auto options = TrainOptions::in_memory();
        options.collective = std::shared_ptr<const Collective>(&c, [](const Collective*) {});
        Trainer trainer(config, nullptr, options);
        try {
          trainer.step(10);
        } catch (const RuntimeError& e) {
          errors[c.rank()] = e.what();
        }
        steps[c.rank()] = trainer.current_step();
      },
      1);
  EXPECT_NE(errors[1].find("non-finite loss (nan) at step 3"), std::string::npos) << errors[1];
  EXPECT_NE(errors[0].find("a non-finite loss on another process at step 3"), std::string::npos)
      << errors[0];
  EXPECT_EQ(steps[0], 2);
  EXPECT_EQ(steps[1], 2);
}

// The pid of the child of `parent` whose environment says RANK=rank, or -1.
pid_t child_with_rank(pid_t parent, int rank) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const auto close = line.rfind(')');
    if (close == std::string::npos) {
      continue;
    }
    std::istringstream rest(line.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid != parent) {
      continue;
    }
    std::ifstream env(entry.path() / "environ");
    const std::string all((std::istreambuf_iterator<char>(env)), std::istreambuf_iterator<char>());
    if (all.find(std::string("RANK=") + std::to_string(rank) + '\0') == 0 ||
        all.find(std::string("\0RANK=", 6) + std::to_string(rank) + '\0') != std::string::npos) {
      return static_cast<pid_t>(std::stoi(name));
    }
  }
  return -1;
}

// Starts `uotflow ARGS` with stdout and stderr into `log`; returns its pid.
pid_t start_cli(const std::vector<std::string>& args, const std::string& log) {
  const std::string cli = std::string(UOTFLOW_BINARY_DIR) + "/uotflow";
  const pid_t pid = fork();
  if (pid == 0) {
    setenv("UOTFLOW_DIST_TIMEOUT", "30", 1);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> argv{const_cast<char*>(cli.c_str())};
    for (const auto& a : args) {
      argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    execv(cli.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

// Waits up to `seconds` for `pid`; its wait status, or -1 when it is still running.
int wait_for(pid_t pid, double seconds) {
  const auto start = std::chrono::steady_clock::now();
  int status = 0;
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() <
         seconds) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

// A long tiny UOTM run that checkpoints every 20 steps, written to the test's folder.
std::string long_run_config(const fs::path& dir) {
  auto config = testing::tiny_config(100000);
  config["eval"]["n"] = 0;
  config["train"]["checkpoint_every"] = 20;
  config["train"]["log_every"] = 20;
  config["train"]["eval_every"] = 0;
  config["train"]["snapshot_every"] = 0;
  return write_config(dir, "config", config);
}

// Waits until the run named `name` under `dir` has a checkpoint; returns its directory.
std::string run_with_a_checkpoint(const fs::path& dir, const std::string& name) {
  for (int i = 0; i < 2400; ++i) {
    const auto run = run_dir_named(dir, name);
    if (!run.empty() && !latest_checkpoint(run).empty()) {
      return run;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return "";
}

TEST(Distributed, ASignalStopsEveryProcessAfterTheSameStepWithACheckpoint) {
  const auto dir = fresh_test_dir();
  const auto path = long_run_config(dir);
  const auto log = (dir / "launcher.txt").string();
  const pid_t launcher = start_cli(
      {"train", "--config", path, "--out", dir.string(), "--name", "stopped", "--nproc", "2"}, log);
  const auto run = run_with_a_checkpoint(dir, "stopped");
  ASSERT_FALSE(run.empty()) << read_file(log);
  ASSERT_EQ(kill(launcher, SIGTERM), 0);
  const int status = wait_for(launcher, 60);
  ASSERT_NE(status, -1) << "the processes did not stop within 60 s";
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << read_file(log);
  const auto output = read_file(log);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(output, m, std::regex("interrupted at step ([0-9]+)"))) << output;
  const int64_t stopped_at = std::stoll(m[1]);
  EXPECT_NE(latest_checkpoint(run).find(std::to_string(stopped_at)), std::string::npos)
      << latest_checkpoint(run) << " should be the checkpoint of step " << stopped_at;
  const auto resumed = run_cli("train --resume " + run + " --steps " +
                               std::to_string(stopped_at + 10) + " --nproc 2");
  ASSERT_EQ(resumed.code, 0) << resumed.output;
}

TEST(Distributed, KillingOneProcessStopsTheOthersAndTheRunResumesWithTheSameCount) {
  const auto dir = fresh_test_dir();
  const auto path = long_run_config(dir);
  const auto log = (dir / "launcher.txt").string();
  const pid_t launcher = start_cli(
      {"train", "--config", path, "--out", dir.string(), "--name", "fault", "--nproc", "2"}, log);
  // Wait for a checkpoint, then kill rank 1.
  const auto run = run_with_a_checkpoint(dir, "fault");
  ASSERT_FALSE(run.empty()) << read_file(log);
  const pid_t rank1 = child_with_rank(launcher, 1);
  ASSERT_GT(rank1, 0);
  ASSERT_EQ(kill(rank1, SIGKILL), 0);
  const auto killed_at = std::chrono::steady_clock::now();
  const int status = wait_for(launcher, 90);
  ASSERT_NE(status, -1) << "the launcher did not exit within 90 s";
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count(),
            30.0)
      << "rank 0 should notice at once that its peer is gone, not at the timeout";
  const auto output = read_file(log);
  EXPECT_NE(output.find("process 1 of 2 was killed by signal 9"), std::string::npos) << output;
  // Rank 0's error: one line naming what failed.
  const std::regex rank0_error(
      "uotflow: error: data parallel: [^\n]* failed on rank 0 of 2[^\n]*\n");
  EXPECT_TRUE(std::regex_search(output, rank0_error)) << output;
  EXPECT_EQ(output.find("terminate called"), std::string::npos) << output;
  EXPECT_EQ(output.find("Exception raised from"), std::string::npos) << output;

  // The newest checkpoint is whole: a resume with two processes continues from it.
  const auto checkpoint = latest_checkpoint(run);
  const std::smatch digits = [&] {
    std::smatch m;
    std::regex_search(checkpoint, m, std::regex("([0-9]+)[^0-9/]*$"));
    return m;
  }();
  ASSERT_FALSE(digits.empty()) << checkpoint;
  const int64_t resumed_from = std::stoll(digits[1]);
  const int64_t until = resumed_from + 20;
  const auto resumed =
      run_cli("train --resume " + run + " --steps " + std::to_string(until) + " --nproc 2");
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  const auto rows = testing::read_jsonl(run + "/metrics.jsonl");
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows.back()["step"].get<int64_t>(), until);
  EXPECT_NE(read_file(run + "/log.txt")
                .find("started from rank 0's state at step " + std::to_string(resumed_from)),
            std::string::npos);
}

}  // namespace
}  // namespace uotflow
