// Tests of a run's defences: verified checkpoints, one writer per run, settings checked before the
// run directory exists, evaluation that never costs training, resume after kill -9.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>

#include "cli_runner.h"
#include "run_checks.h"
#include "uotflow/core/device.h"
#include "uotflow/core/error.h"
#include "uotflow/io/checkpoint.h"
#include "uotflow/io/files.h"
#include "uotflow/io/npy.h"
#include "uotflow/io/run_lock.h"
#include "uotflow/run/run.h"

namespace fs = std::filesystem;
using namespace uotflow;
using uotflow::testing::read_jsonl;
using uotflow::testing::run_cli;
using uotflow::testing::tiny_config;

namespace {

class HardeningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = uotflow::testing::fresh_test_dir();
    options_.out_root = (root_ / "runs").string();
  }
  TrainResult resume(const std::string& run_dir, int64_t steps, bool from_last_good = false) {
    Json config = load_run_config(run_dir);
    apply_set(config, "train.steps=" + std::to_string(steps));
    TrainOptions options = options_;
    options.resume_dir = run_dir;
    options.resume_from_last_good = from_last_good;
    return train(config, options);
  }
  std::string config_error(const std::function<void()>& fn) {
    try {
      fn();
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "(no ConfigError)";
  }
  fs::path root_;
  TrainOptions options_;
};

std::string checkpoint(const std::string& run_dir, int64_t step) {
  return run_dir + "/checkpoints/step-" + std::string(8 - std::to_string(step).size(), '0') +
         std::to_string(step) + ".ckpt";
}

void flip_bit(const std::string& path, size_t offset) {
  auto bytes = read_file(path);
  bytes[offset] = static_cast<char>(bytes[offset] ^ 4);
  write_file_atomic(path, bytes);
}

// Every step of metrics.jsonl once, in order: no rows of two trajectories.
void expect_each_step_once(const std::string& run_dir) {
  int64_t last = 0;
  for (const auto& row : read_jsonl(run_dir + "/metrics.jsonl")) {
    EXPECT_GT(row["step"].get<int64_t>(), last) << run_dir;
    last = row["step"].get<int64_t>();
  }
}

}  // namespace

// Problem 1: a corrupt newest checkpoint is refused by name and nothing changes; asked to, the
// run resumes from the newest one that verifies and ends bit for bit where an unbroken run does.
TEST_F(HardeningTest, CorruptCheckpointIsNamedAndLastGoodResumesExactly) {
  const auto straight = train(tiny_config(40), options_);
  const auto run = train(tiny_config(40), options_).run_dir;
  const auto newest = checkpoint(run, 40);
  flip_bit(newest, read_file(newest).size() / 2);
  const auto broken = read_file(newest);
  const auto final_before = read_file(run + "/final/generator.safetensors");
  const auto what = config_error([&] { resume(run, 40); });
  EXPECT_NE(what.find("checkpoint '" + newest + "' failed verification"), std::string::npos)
      << what;
  // The library names its option; the command line names the flag that sets it.
  EXPECT_NE(what.find("resuming with resume_from_last_good starts from the newest"),
            std::string::npos)
      << what;
  const auto cli = run_cli("train --resume " + run + " --steps 40");
  EXPECT_EQ(cli.code, 2) << cli.output;
  EXPECT_NE(cli.output.find("resuming with --resume-from-last-good starts from the newest"),
            std::string::npos)
      << cli.output;
  EXPECT_EQ(read_file(newest), broken);
  EXPECT_EQ(read_file(run + "/final/generator.safetensors"), final_before);
  EXPECT_NE(read_file(run + "/log.txt").find("error: checkpoint"), std::string::npos);

  EXPECT_EQ(resume(run, 40, /*from_last_good=*/true).step, 40);
  uotflow::testing::expect_same_final_weights(straight.run_dir, run);
  EXPECT_EQ(read_file(newest + ".corrupt"), broken);  // set aside, not deleted
  EXPECT_NO_THROW(read_checkpoint(newest));           // written anew
  EXPECT_NE(read_file(run + "/log.txt").find("skipped checkpoint '" + newest), std::string::npos);
  expect_each_step_once(run);
}

// When no checkpoint verifies, --resume-from-last-good sets none aside (it used to rename them all
// .corrupt, and a plain resume then started from step 0 and dropped the history): it fails, every
// file stays, and a plain resume still names the newest broken one.
TEST_F(HardeningTest, LastGoodWithNoGoodCheckpointLeavesThemAll) {
  const auto run = train(tiny_config(20), options_).run_dir;
  std::vector<std::pair<std::string, std::string>> broken;
  for (const int64_t step : {10, 20}) {
    const auto path = checkpoint(run, step);
    flip_bit(path, read_file(path).size() / 2);
    broken.emplace_back(path, read_file(path));
  }
  const auto eval_before = read_file(run + "/eval.jsonl");
  const auto what = config_error([&] { resume(run, 30, /*from_last_good=*/true); });
  EXPECT_NE(what.find("no checkpoint of run"), std::string::npos) << what;
  EXPECT_NE(what.find("all left in place"), std::string::npos) << what;
  for (const auto& [path, bytes] : broken) {
    EXPECT_EQ(read_file(path), bytes) << path;
    EXPECT_FALSE(fs::exists(path + ".corrupt")) << path;
  }
  const auto plain = config_error([&] { resume(run, 30); });
  EXPECT_NE(plain.find("failed verification"), std::string::npos) << plain;
  EXPECT_EQ(read_file(run + "/eval.jsonl"), eval_before);
}

// Problem 1: another run's checkpoint copied in under a later name is refused.
TEST_F(HardeningTest, CheckpointOfAnotherRunIsRefused) {
  const auto run = train(tiny_config(20), options_).run_dir;
  Json other_config = tiny_config(30);
  other_config["seed"] = 5;
  const auto other = train(other_config, options_).run_dir;
  fs::copy_file(checkpoint(other, 30), checkpoint(run, 30));
  const auto what = config_error([&] { resume(run, 40); });
  EXPECT_NE(what.find("differs from the config of checkpoint '" + checkpoint(run, 30) +
                      "' in: seed, train.steps"),
            std::string::npos)
      << what;
}

// Problem 5: an edited config.json is compared with the checkpoint, naming the keys.
TEST_F(HardeningTest, EditedConfigIsNamedOnResume) {
  const auto run = train(tiny_config(20), options_).run_dir;
  auto stored = read_json_file(run + "/config.json");
  stored["generator"]["width"] = 64;
  stored["data"]["name"] = "25gaussians";
  write_file_atomic(run + "/config.json", stored.dump(2));
  const auto what = config_error([&] { resume(run, 30); });
  EXPECT_NE(what.find("in: data.name, generator.width; restore those keys"), std::string::npos)
      << what;
}

// Problem 2: a second writer of a run is refused, naming the holder; nothing is written.
TEST_F(HardeningTest, SecondWriterIsRefused) {
  const auto run = train(tiny_config(20), options_).run_dir;
  const auto metrics = read_file(run + "/metrics.jsonl");
  {
    RunLock held(run);
    const auto what = config_error([&] { resume(run, 30); });
    EXPECT_NE(
        what.find("is in use by another uotflow process (pid " + std::to_string(::getpid()) + ")"),
        std::string::npos)
        << what;
    auto sample = run_cli("sample --run " + run + " --n 5 --out " + run + "/samples/x.npy");
    EXPECT_EQ(sample.code, 2) << sample.output;
    EXPECT_NE(sample.output.find("in use"), std::string::npos) << sample.output;
  }
  EXPECT_EQ(read_file(run + "/metrics.jsonl"), metrics);
  EXPECT_EQ(resume(run, 30).step, 30);  // the lock went with its holder
}

// Problem 4: settings that only an evaluation or a batch would reject fail before the run
// directory is made.
TEST_F(HardeningTest, SettingsAreCheckedBeforeTheRunDirectory) {
  // A batch whose buffers alone take four times this machine's memory, wherever the test runs.
  const auto too_big = std::to_string(physical_memory_bytes() / 8);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"eval.metrics=[\"w2\"]", "eval metric 'w2' with eval.n = 6000"},
      {"eval.n_projections=0", "needs n_projections >= 1"},
      {"eval.metrics=[\"kid\"]", "needs at least two points"},
      {"eval.metrics=[\"outlier_mass\"]", "needs outlier locations"},
      {"train.batch_size=" + too_big, "train.batch_size needs about"},
  };
  for (const auto& [set, expect] : cases) {
    Json config = tiny_config(10);
    apply_set(config, set);
    apply_set(config, expect.find("6000") != std::string::npos ? "eval.n=6000"
                      : set.find("kid") != std::string::npos   ? "eval.n=1"
                                                               : "eval.n=200");
    const auto what = config_error([&] { train(config, options_); });
    EXPECT_NE(what.find(expect), std::string::npos) << set << ": " << what;
  }
  EXPECT_FALSE(fs::exists(options_.out_root) && !fs::is_empty(options_.out_root));
}

// Evaluation and snapshots never cost training: the step's checkpoint is written first, the
// failure is in log.txt, and a resume redoes what is missing (each evaluation once).
TEST_F(HardeningTest, FailedOutputsKeepTheCheckpointOfTheirStep) {
  const auto run = train(tiny_config(10), options_).run_dir;
  const auto blocker = run + "/samples/step-0000020.npy";
  fs::create_directory(blocker);  // the snapshot of step 20 cannot be written
  EXPECT_THROW(resume(run, 20), RuntimeError);
  EXPECT_NO_THROW(read_checkpoint(checkpoint(run, 20)));
  EXPECT_NE(read_file(run + "/log.txt").find("error: cannot write file '" + blocker),
            std::string::npos);
  fs::remove(blocker);
  EXPECT_EQ(resume(run, 20).step, 20);
  EXPECT_TRUE(fs::is_regular_file(blocker));
  int64_t at_20 = 0;
  for (const auto& row : read_jsonl(run + "/eval.jsonl")) {
    at_20 += row["step"] == 20 && row["metric"] == "sw2";
  }
  EXPECT_EQ(at_20, 1);
}

// A run killed before its first checkpoint starts over in its own directory.
TEST_F(HardeningTest, RunWithoutCheckpointStartsOver) {
  const auto straight = train(tiny_config(20), options_);
  const auto run = train(tiny_config(20), options_).run_dir;
  fs::remove_all(run + "/checkpoints");
  EXPECT_EQ(resume(run, 20).step, 20);
  uotflow::testing::expect_same_final_weights(straight.run_dir, run);
  expect_each_step_once(run);
}

// A kill mid-append leaves a torn last line in eval.jsonl or metrics.jsonl: a resume drops it (it
// used to stop every resume with a parse error) and goes on exactly.
TEST_F(HardeningTest, TornLastLineOfTheLogsIsDroppedOnResume) {
  const auto straight = train(tiny_config(30), options_);
  const auto run = train(tiny_config(20), options_).run_dir;
  for (const char* file : {"/eval.jsonl", "/metrics.jsonl"}) {
    std::ofstream(run + file, std::ios::app) << R"({"step": 20, "metric": "sw)";
  }
  EXPECT_EQ(resume(run, 30).step, 30);
  EXPECT_NE(read_file(run + "/log.txt").find("dropped a torn line of eval.jsonl"),
            std::string::npos);
  uotflow::testing::expect_same_final_weights(straight.run_dir, run);
  for (const char* file : {"/eval.jsonl", "/metrics.jsonl"}) {
    const auto rows = uotflow::testing::read_jsonl(run + file);  // every line parses
    EXPECT_FALSE(rows.empty()) << file;
  }
  expect_each_step_once(run);
}

// A run stopped off the log tick (step 7, ticks every 5) resumes with a first row that averages
// steps 8..10 only: the row says so (it used to look like any 5-step mean).
TEST_F(HardeningTest, MetricsRowsSayHowManyStepsTheyAverage) {
  std::string run;
  {
    uotflow::Trainer first(tiny_config(20), nullptr, options_);
    first.step(7);
    first.checkpoint();
    run = first.run_dir();
  }
  auto again = uotflow::Trainer::resume(run, nullptr, options_);
  again.run();
  std::map<int64_t, int64_t> averaged;
  for (const auto& row : uotflow::testing::read_jsonl(run + "/metrics.jsonl")) {
    averaged[row["step"].get<int64_t>()] = row["steps_averaged"].get<int64_t>();
  }
  EXPECT_EQ(averaged, (std::map<int64_t, int64_t>{{5, 5}, {10, 3}, {15, 5}, {20, 5}}));
}

// Problem 6: small input errors are one-line errors with exit code 2, and nothing is overwritten.
TEST_F(HardeningTest, CommandLineInputErrors) {
  const auto dir = root_.string();
  const auto run = train(tiny_config(10), options_).run_dir;
  write_file_atomic(dir + "/deep.json", std::string(150000, '[') + std::string(150000, ']'));
  write_file_atomic(dir + "/big.json", R"({"train": {"lr_g": 1e999}})");
  write_file_atomic(dir + "/existing.npy", "keep");
  const auto weights = read_file(run + "/final/generator_ema.safetensors");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"train --dry-run --config " + dir + "/deep.json", "nested deeper than 256 levels"},
      {"train --dry-run --config " + dir + "/big.json", "at key 'train.lr_g'"},
      {"train --dry-run --seed -1", "--seed: '-1' is not an integer >= 0"},
      {"train --steps 3 --threads 100000 --out " + dir + "/runs", "threads must be between 1"},
      {"train --resume ''", "--resume: must not be empty"},
      {"train --config ''", "--config: must not be empty"},
      {"sample --run " + run + " --phase -1 --out x.npy", "--phase: '-1' is not an integer"},
      {"sample --run " + run + " --out " + run + "/final/generator_ema.safetensors",
       "is never overwritten"},
      {"sample --run " + run + " --out " + dir + "/existing.npy", "pass --overwrite"},
      {"data --dataset 8gaussians --out " + dir + "/existing.npy", "pass --overwrite"},
      {"flow --resume " + run + " --steps 5", "resume it with uotflow train --resume"},
      {"train --steps 3 --name a/b --out " + dir + "/runs", "run name 'a/b' may not contain '/'"},
  };
  for (const auto& [args, expect] : cases) {
    const auto r = run_cli(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(expect), std::string::npos) << args << "\n" << r.output;
    EXPECT_LE(std::count(r.output.begin(), r.output.end(), '\n'), 2) << r.output;
  }
  EXPECT_EQ(read_file(run + "/final/generator_ema.safetensors"), weights);
  EXPECT_EQ(read_file(dir + "/existing.npy"), "keep");
  EXPECT_EQ(
      run_cli("data --dataset 8gaussians --n 20 --overwrite --out " + dir + "/existing.npy").code,
      0);
  // A metric that is not finite on finite inputs is an error, not a null.
  run_cli("data --dataset 8gaussians --n 200 --out " + dir + "/a.npy");
  const auto eval = run_cli("eval --metrics sinkhorn --epsilon 1e-30 --samples " + dir +
                            "/a.npy --reference " + dir + "/existing.npy");
  EXPECT_EQ(eval.code, 2) << eval.output;
  EXPECT_NE(eval.output.find("metric 'sinkhorn' is not finite"), std::string::npos) << eval.output;
}

namespace {

// Each command (uotflow's arguments) exits 2 with one line holding its expected text; a KILL after
// 60 s makes a hang a failure rather than a stuck test.
void expect_refused_within_a_minute(const std::vector<std::pair<std::string, std::string>>& cases) {
  for (const auto& [args, expect] : cases) {
    const auto r = uotflow::testing::run_shell(
        "timeout -s KILL 60 " + std::string(UOTFLOW_BINARY_DIR) + "/uotflow " + args + " 2>&1");
    EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(expect), std::string::npos) << args << "\n" << r.output;
    EXPECT_LE(std::count(r.output.begin(), r.output.end(), '\n'), 2) << r.output;
  }
}

}  // namespace

// Inputs that used to hang (a net of 2^31 units or 2^63 layers, 2^63 potential updates per step, a
// config read from /dev/zero, one metric listed 200,000 times, an O(n^2) metric over 300,000
// points) or to fail only after training (a Gaussian KL fitted from 2 points) are refused up
// front: exit 2, one line naming the key, within seconds (a KILL after 60 s makes a hang a
// failure, not a stuck test), and no run directory.
TEST_F(HardeningTest, InputsThatWouldHangAreRefusedUpFront) {
  const auto dir = root_.string();
  Json many{{"eval", {{"metrics", std::vector<std::string>(200000, "sw2")}}}};
  write_file_atomic(dir + "/many.json", many.dump());
  const std::string train = "train --steps 2 --out " + dir + "/runs ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {train + "--set generator.width=2147483648", "network 'resnet_fc': width, depth and nz"},
      {train + "--set generator.depth=9223372036854775807", "width, depth and nz"},
      {train + "--set potential.depth=9223372036854775807", "width and depth"},
      {train + "--set train.d_steps=9223372036854775807", "'train.d_steps' must be in [1, 1000]"},
      {train + "--config /dev/zero", "'/dev/zero' is not a regular file"},
      {train + "--config " + dir + "/many.json", "lists 'sw2' more than once"},
      {train + "--set eval.n=300000 --set 'eval.metrics=[\"energy\"]'", "20000 x 20000 limit"},
      {train + "--set eval.n=2 --set 'eval.metrics=[\"gauss_kl\"]'", "more points than dimensions"},
  };
  expect_refused_within_a_minute(cases);
  EXPECT_FALSE(fs::exists(dir + "/runs"));
}

// Inputs that used to lose or alter data without a word: a FIFO or device as --out (a file was
// renamed over it), a `null` config (trained on the defaults), fid-ref replacing its --out without
// --overwrite, NaN mode centres (0 modes, exit 0), a --seed or --steps past 2^64 or 2^63 (clamped).
// Each is exit 2 with one line, and nothing is replaced.
TEST_F(HardeningTest, InputsThatLostDataSilentlyAreRefused) {
  const auto dir = root_.string();
  const auto run = train(tiny_config(10), options_).run_dir;
  ASSERT_EQ(uotflow::testing::run_shell("mkfifo " + dir + "/fifo").code, 0);
  write_file_atomic(dir + "/null.json", "null");
  write_file_atomic(dir + "/stats.npz", "keep");
  save_npy(dir + "/a.npy", torch::randn({50, 2}));
  save_npy(dir + "/nan.npy", torch::tensor({{0.0F, NAN}, {1.0F, 1.0F}}));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"sample --run " + run + " --n 5 --overwrite --out " + dir + "/fifo",
       "is not a regular file"},
      {"data --dataset 8gaussians --n 5 --overwrite --out " + dir + "/fifo",
       "is not a regular file"},
      {"train --steps 2 --config " + dir + "/null.json --out " + dir + "/null-runs",
       "must hold a JSON object, got null"},
      {"fid-ref --data fashion_mnist --out " + dir + "/stats.npz", "pass --overwrite"},
      {"eval --metrics modes --centres " + dir + "/nan.npy --mode-std 0.1 --samples " + dir +
           "/a.npy --reference " + dir + "/a.npy",
       "centres hold a value that is not finite"},
      // Numbers past what the option holds were clamped to the largest one.
      {"train --dry-run --seed 99999999999999999999 --out " + dir + "/big-runs",
       "'99999999999999999999' is out of range (at most 18446744073709551615)"},
      {"train --dry-run --steps 9223372036854775808 --out " + dir + "/big-runs",
       "'9223372036854775808' is out of range (at most 9223372036854775807)"},
      {"sample --run " + run + " --phase 9223372036854775808 --out " + dir + "/p.npy",
       "out of range"},
  };
  expect_refused_within_a_minute(cases);
  EXPECT_TRUE(fs::is_fifo(dir + "/fifo"));
  EXPECT_EQ(read_file(dir + "/stats.npz"), "keep");
  EXPECT_FALSE(fs::exists(dir + "/null-runs"));
}

// Inputs that ended in a raw library message (LibTorch's float overflow or allocator text) or
// named the wrong cause: each is exit 2 with one line naming the key, flag or file and what is
// accepted, and no run directory is made.
TEST_F(HardeningTest, InputsThatGaveRawOrMisleadingMessagesNameTheirCause) {
  const auto dir = root_.string();
  const auto run = train(tiny_config(10), options_).run_dir;
  save_npy(dir + "/a.npy", torch::randn({50, 2}));
  // An .npy header with a negative size (numpy writes none; a hand-made or damaged file).
  auto npy = read_file(dir + "/a.npy");
  npy.replace(npy.find("(50, 2)"), 7, "(-1, 2)");
  write_file_atomic(dir + "/negative.npy", npy);
  save_npy(dir + "/line.npy", torch::randn({50}));
  // An edited method: the checkpoints were written by uotm.
  const auto edited = dir + "/edited";
  fs::copy(run, edited, fs::copy_options::recursive);
  auto stored = read_json_file(edited + "/config.json");
  stored["method"] = "sjko";
  write_file_atomic(edited + "/config.json", stored.dump(2));
  const std::string train = "train --steps 2 --out " + dir + "/cli-runs ";
  const std::string flow = train +
                           "--set method=swjko --set 'functional.params={\"target\": {\"name\": "
                           "\"quadratic\", \"params\": {}}}' --set parametrization.name=";
  write_file_atomic(dir + "/garbage.pt", "not a TorchScript archive");
  write_file_atomic(dir + "/garbage.npz", "not a zip file");
  const std::string images = train +
                             "--set data.name=fashion_mnist --set data.params.limit=64 "
                             "--set 'eval.features.metrics=[\"fid\"]' ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {train + "--set train.lr_g=1e300",
       "config key 'train.lr_g' is 1e+300, beyond what float32 (the precision of training) holds"},
      {train + "--set 'data.params.mean=[1e39, 0]'", "config key 'data.params.mean[0]' is 1e+39"},
      {train + "--set generator.width=4294967297", "network 'resnet_fc': width, depth and nz need"},
      {train + "--set data.name=gaussian --set data.params.dim=100000000",
       "data: data set 'gaussian': parameter dim = 100000000 (a covariance of dim x dim numbers) "
       "needs about"},
      {flow + "particles --set parametrization.particles.n=100000000000",
       "parametrization.particles.n needs about"},
      {flow + "particles --set parametrization.particles.n=1000000",
       "parametrization.particles.n with an entropy term (a KDE over all pairs) needs about"},
      {flow + "grid --set parametrization.grid.size=10000000", "parametrization.grid.size needs"},
      {"sample --run " + run + " --n 1000000000000 --out " + dir + "/s.npy",
       "--n = 1000000000000 samples of dimension 2 needs about"},
      {"data --dataset 8gaussians --n 1000000000000 --out " + dir + "/d.npy",
       "--n = 1000000000000 samples of dimension 2 needs about"},
      {"eval --metrics sw2 --samples " + dir + "/negative.npy --reference " + dir + "/a.npy",
       "'shape' has a negative size in (-1, 2)"},
      {"eval --metrics sinkhorn --epsilon inf --samples " + dir + "/a.npy --reference " + dir +
           "/a.npy",
       "--epsilon: 'inf' is not a finite number"},
      {train + "--config " + dir, "config file '" + dir + "' is not a regular file"},
      // The source section's errors name the source, not data.*.
      {train + "--set source.outlier_fraction=2", "source.outlier_fraction must be in [0, 1)"},
      {train + "--set source.params.bogus=1", "source: unknown parameter 'bogus'"},
      {train + "--set generator.nz=1099511627776", "width, depth and nz need"},
      {train + "--set eval.n_projections=4611686018427387904 --set 'eval.metrics=[\"sw2\"]'",
       "metric 'sw2': n_projections = 4611686018427387904 needs about"},
      {"sample --run " + run + " --n 5 --overwrite --out " + run + "/samples/final.npy",
       "is a snapshot run '" + run + "' wrote itself and is never overwritten"},
      // Number flags CLI11 reads as numbers or reports in two lines of its own words.
      {"data --dataset 8gaussians --n inf --out " + dir + "/d.npy",
       "uotflow: error: --n: 'inf' is not an integer >= 0 (--help lists the options)"},
      {"eval --metrics sinkhorn --epsilon 0x10 --samples " + dir + "/a.npy --reference " + dir +
           "/a.npy",
       "--epsilon: '0x10' is not a finite number"},
      {"eval --metrics sw2 --samples " + dir + "/a.npy --reference " + dir + "/line.npy",
       "--samples '" + dir + "/a.npy' holds points of dimension 2 but --reference '" + dir +
           "/line.npy' of 1"},
      // Feature-metric files that do not load, read before the run directory (not after it).
      {images + "--set eval.features.extractor=" + dir + "/garbage.pt",
       "cannot load TorchScript extractor '" + dir + "/garbage.pt'"},
      {images + "--set eval.features.reference=" + dir + "/garbage.npz",
       "invalid .npz file '" + dir + "/garbage.npz'"},
      {"train --resume " + edited + " --steps 20",
       "names method 'sjko', but its checkpoint '" + edited +
           "/checkpoints/step-00000010.ckpt' was written by method 'uotm'"},
  };
  expect_refused_within_a_minute(cases);
  EXPECT_FALSE(fs::exists(dir + "/cli-runs"));
  EXPECT_FALSE(fs::exists(dir + "/s.npy") || fs::exists(dir + "/d.npy"));
  EXPECT_EQ(run_cli("eval --metrics sw2 --samples " + dir + "/a.npy --reference " + dir +
                    "/a.npy --epsilon 1e300")
                .code,
            0);  // a large finite epsilon is a setting, not an error
}

// Acceptance 3: kill -9 at random moments of a run with frequent checkpoints, each followed by a
// resume: the final weights equal an unbroken run's bit for bit and no temp file remains.
// `steps` is long enough that every kill lands before the run is done.
void kill_and_resume(const fs::path& root, int kills, int64_t steps, uint64_t seed) {
  const std::string settings =
      " --seed 4 --steps " + std::to_string(steps) +
      " --set generator.net=mlp --set potential.net=mlp"
      " --set generator.width=32 --set potential.width=32 --set train.batch_size=64"
      " --set train.checkpoint_every=2 --set train.keep_last=2 --set train.log_every=5"
      " --set train.eval_every=30 --set eval.n=100 --set eval.n_projections=20";
  const auto out = (root / "runs").string();
  auto straight = run_cli("train --out " + out + " --name straight" + settings);
  ASSERT_EQ(straight.code, 0) << straight.output;
  const std::string binary = std::string(UOTFLOW_BINARY_DIR) + "/uotflow";
  const std::string log = out + "/00001-killed/log.txt";
  std::mt19937_64 rng(seed);
  for (int i = 0; i < kills; ++i) {
    // Start (or resume), wait until this process has logged its start ("device ..."), so that a
    // loaded machine's slow start-up does not swallow the kill, then kill -9 a moment later.
    const double delay = 0.05 + 0.9 * static_cast<double>(rng() % 1000) / 1000.0;
    const auto args = i == 0 ? " train --out " + out + " --name killed" + settings
                             : " train --resume " + out + "/00001-killed";
    const std::string count = "$(cat " + log + " 2>/dev/null | grep -c \"Z device\")";
    const std::string script = "n=" + count + "; " + binary + args +
                               " >/dev/null 2>&1 & pid=$!; for k in $(seq 600); do"
                               " [ " +
                               count + " -gt $n ] && break; sleep 0.1; done; sleep " +
                               std::to_string(delay) + "; kill -9 $pid; wait $pid";
    uotflow::testing::run_shell("bash -c '" + script + "'");
  }
  const std::string run = out + "/00001-killed";
  ASSERT_TRUE(fs::exists(log));
  EXPECT_EQ(read_file(run + "/log.txt").find("done at step"), std::string::npos)
      << "the run ended before the last kill: make it longer";
  const auto last = run_cli("train --resume " + run);
  ASSERT_EQ(last.code, 0) << last.output;
  const auto straight_dir = uotflow::testing::last_line(straight.output);
  uotflow::testing::expect_same_final_weights(straight_dir, run);
  for (const auto& e : fs::recursive_directory_iterator(run)) {
    EXPECT_FALSE(
        std::regex_match(e.path().filename().string(), std::regex(R"(.*\.uotflow-tmp\.\d+)")))
        << e.path();
  }
  expect_each_step_once(run);
}

TEST_F(HardeningTest, KillNineThreeTimesThenResumeIsExact) {
  kill_and_resume(root_, 3, 1200, 1);
}

TEST_F(HardeningTest, KillNineTwentyTimesThenResumeIsExact_Slow) {
  kill_and_resume(root_, 20, 8000, 2);
}
