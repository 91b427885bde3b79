// Tests of the trainer and the CLI: exact resume, run directories, bad input, non-finite losses.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "cli_runner.h"
#include "run_checks.h"
#include "uotflow/core/error.h"
#include "uotflow/io/checkpoint.h"
#include "uotflow/io/files.h"
#include "uotflow/io/npy.h"
#include "uotflow/io/safetensors.h"
#include "uotflow/run/run.h"
#include "uotflow_build_info.h"

namespace fs = std::filesystem;
using namespace uotflow;
using uotflow::testing::last_line;
using uotflow::testing::run_cli;
using uotflow::testing::run_shell;
using uotflow::testing::tiny_config;

namespace {

class TrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(0);
    root_ = uotflow::testing::fresh_test_dir();
  }
  std::string write(const std::string& name, const std::string& content) {
    auto path = (root_ / name).string();
    std::ofstream(path) << content;
    return path;
  }
  fs::path root_;
};

}  // namespace

TEST_F(TrainTest, ResumeIsBitIdentical) {
  TrainOptions options;
  options.out_root = (root_ / "runs").string();
  auto straight = train(tiny_config(40), options);
  EXPECT_EQ(straight.step, 40);

  auto first = train(tiny_config(20), options);
  EXPECT_EQ(first.step, 20);
  EXPECT_NE(first.run_dir, straight.run_dir);
  Json resumed_config = load_run_config(first.run_dir);
  apply_set(resumed_config, "train.steps=40");
  options.resume_dir = first.run_dir;
  auto second = train(resumed_config, options);
  EXPECT_EQ(second.step, 40);
  EXPECT_EQ(second.run_dir, first.run_dir);

  uotflow::testing::expect_same_final_weights(straight.run_dir, first.run_dir);
  auto sa = load_npy(straight.run_dir + "/samples/final.npy");
  auto sb = load_npy(first.run_dir + "/samples/final.npy");
  EXPECT_TRUE(torch::equal(sa, sb));
  // The checkpoints hold the full state: resuming a finished run to the same length changes
  // nothing.
  auto more = load_npy(first.run_dir + "/samples/step-0000040.npy");
  EXPECT_TRUE(torch::equal(more, sa));
  // log.txt is appended, not truncated, on resume.
  auto log = read_file(first.run_dir + "/log.txt");
  EXPECT_NE(log.find("start:"), std::string::npos);
  EXPECT_NE(log.find("resume from"), std::string::npos);
  // keep_last = 3 by default: steps 20, 30, 40 remain.
  int count = 0;
  for (const auto& e : fs::directory_iterator(first.run_dir + "/checkpoints")) {
    count += e.path().extension() == ".ckpt";
  }
  EXPECT_EQ(count, 3);
}

TEST_F(TrainTest, SamplingFromFinalWeightsIsSeededAndMatchesTheRun) {
  TrainOptions options;
  options.out_root = (root_ / "runs").string();
  auto run = train(tiny_config(10), options);
  auto a = sample_run(run.run_dir, 100, 5, true);
  auto b = sample_run(run.run_dir, 100, 5, true);
  auto c = sample_run(run.run_dir, 100, 6, true);
  auto raw = sample_run(run.run_dir, 100, 5, false);
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{100, 2}));
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
  EXPECT_FALSE(torch::equal(a, raw));
  // Missing weights are an error, never a silently untrained generator.
  fs::remove(run.run_dir + "/final/generator_ema.safetensors");
  EXPECT_THROW(sample_run(run.run_dir, 10, 5, true), ConfigError);
}

TEST_F(TrainTest, CliTrainWritesTheRunDirectory) {
  auto out = (root_ / "runs").string();
  auto r = run_cli("train --out " + out +
                   " --seed 3 --steps 20 --set train.log_every=5 --set train.eval_every=10"
                   " --set generator.net=mlp --set generator.width=16 --set potential.width=16"
                   " --set potential.net=mlp --set eval.n=100 --set train.batch_size=32");
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string dir = last_line(r.output);
  EXPECT_EQ(fs::path(dir).parent_path(), fs::path(out));
  for (const auto& f :
       {"config.json", "log.txt", "metrics.jsonl", "eval.jsonl", "samples/final.png",
        "samples/final.npy", "samples/step-0000020.png", "final/generator.safetensors",
        "final/generator_ema.safetensors", "checkpoints/step-00000020.ckpt"}) {
    EXPECT_TRUE(fs::exists(fs::path(dir) / f)) << f;
  }
  auto config = read_json_file(dir + "/config.json");
  EXPECT_EQ(config["seed"], 3);
  EXPECT_EQ(config["train"]["steps"], 20);
  EXPECT_TRUE(config["meta"].contains("libtorch_version"));
  // eval.jsonl rows carry what reproduces them.
  std::ifstream eval(dir + "/eval.jsonl");
  std::string line;
  std::getline(eval, line);
  auto row = parse_json(line, "eval.jsonl");
  for (const auto& key : {"step", "metric", "value", "n", "ema", "seed"}) {
    EXPECT_TRUE(row.contains(key)) << key;
  }
  // A second run gets a new directory; the first is untouched.
  auto before = read_file(dir + "/log.txt");
  auto r2 = run_cli("train --out " + out +
                    " --seed 3 --steps 1 --set generator.net=mlp"
                    " --set potential.net=mlp --set eval.n=50 --set train.batch_size=16");
  ASSERT_EQ(r2.code, 0) << r2.output;
  EXPECT_NE(last_line(r2.output), dir);
  EXPECT_EQ(read_file(dir + "/log.txt"), before);
  // sample / eval / data / info round trip.
  auto s = run_cli("sample --run " + dir + " --n 300 --out " + (root_ / "s.npy").string());
  ASSERT_EQ(s.code, 0) << s.output;
  EXPECT_EQ(load_npy((root_ / "s.npy").string()).sizes(), (std::vector<int64_t>{300, 2}));
  auto d = run_cli("data --dataset 8gaussians --n 300 --out " + (root_ / "d.npy").string());
  ASSERT_EQ(d.code, 0) << d.output;
  auto e = run_cli("eval --samples " + (root_ / "s.npy").string() + " --reference " +
                   (root_ / "d.npy").string() + " --metrics sw2,energy");
  ASSERT_EQ(e.code, 0) << e.output;
  auto json = parse_json(last_line(e.output), "eval output");
  EXPECT_GT(json["sw2"].get<double>(), 0.0);
  EXPECT_TRUE(json.contains("energy"));
  auto info = run_cli("info");
  ASSERT_EQ(info.code, 0);
  for (const auto& name :
       {"uotm", "kl", "softplus", "8gaussians", "resnet_fc", "sw2", "quadratic"}) {
    EXPECT_NE(info.output.find(name), std::string::npos) << name;
  }
  auto dry = run_cli("train --dry-run --set loss.phi2=chi2 --seed 1");
  ASSERT_EQ(dry.code, 0) << dry.output;
  EXPECT_EQ(parse_json(dry.output, "dry run")["loss"]["phi2"], "chi2");
}

TEST_F(TrainTest, BadInputGivesOneLineErrorsAndExitCode2) {
  auto out = (root_ / "runs").string();
  auto bad_key = write("bad_key.json", R"({"train": {"stepz": 10}})");
  auto bad_type = write("bad_type.json", R"({"train": {"steps": "ten"}})");
  auto bad_name = write("bad_name.json", R"({"loss": {"phi2": "klx"}})");
  auto bad_json = write("bad_json.json", R"({"train": {"steps": 10,}})");
  auto dup = write("dup.json", R"({"train": {"steps": 10, "steps": 20}})");
  auto malformed = write("malformed.csv", "x,y\n1,2\n3,oops\n");
  struct Case {
    std::string args;
    std::string expect;
  };
  std::vector<Case> cases = {
      {"train --config " + bad_key, "train.stepz"},
      {"train --config " + bad_type, "train.steps"},
      {"train --config " + bad_name, "klx"},
      {"train --config " + bad_json, "invalid JSON"},
      {"train --config " + dup, "duplicate key 'steps'"},
      {"train --config " + (root_ / "missing.json").string(), "missing.json"},
      {"train --set data.name=file --set data.params={\"path\":\"" + (root_ / "none.npy").string() +
           "\"}",
       "none.npy"},
      {"train --set data.name=file --set data.params={\"path\":\"" + malformed + "\"}",
       "malformed.csv"},
      {"train --set data.name=nosuchset", "nosuchset"},
      {"train --set generator.net=transformer", "transformer"},
      {"train --set eval.metrics=[\"sw3\"]", "sw3"},
      {"train --device tpu", "tpu"},
      {"train --steps 0", "train.steps"},
      {"train --resume " + (root_ / "nowhere").string(), "nowhere"},
      {"sample --run " + (root_ / "nowhere").string() + " --out x.npy", "nowhere"},
      {"eval --samples " + (root_ / "no.npy").string() + " --reference " + malformed, "no.npy"},
      {"train --no-such-flag", "no-such-flag"},
      {"train --resume " + out + " --name other", "--name are not allowed"},
  };
  for (const auto& c : cases) {
    auto r = run_cli(c.args + " --out " + out);
    if (c.args.rfind("sample", 0) == 0 || c.args.rfind("eval", 0) == 0 ||
        c.args.find("--resume") != std::string::npos) {
      r = run_cli(c.args);
    }
    EXPECT_EQ(r.code, 2) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.args << "\n" << r.output;
    // One line: the error and nothing else.
    EXPECT_LE(std::count(r.output.begin(), r.output.end(), '\n'), 2) << r.output;
  }
  // Nothing was created for the rejected configs.
  EXPECT_FALSE(fs::exists(out) && !fs::is_empty(out));
}

TEST_F(TrainTest, TruncatedCheckpointIsAConfigErrorAndNothingIsLost) {
  TrainOptions options;
  options.out_root = (root_ / "runs").string();
  auto run = train(tiny_config(10), options);
  const auto ckpt = latest_checkpoint(run.run_dir);
  auto bytes = read_file(ckpt);
  { std::ofstream(ckpt, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() / 2); }
  auto log_before = read_file(run.run_dir + "/log.txt");
  auto weights_before = read_file(run.run_dir + "/final/generator.safetensors");
  auto r = run_cli("train --resume " + run.run_dir + " --steps 20");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("failed verification: payload is"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(run.run_dir + "/final/generator.safetensors"), weights_before);
  EXPECT_EQ(read_file(ckpt), bytes.substr(0, bytes.size() / 2));
}

TEST_F(TrainTest, NonFiniteLossStopsWithExitCode1AndKeepsTheLastCheckpoint) {
  auto out = (root_ / "runs").string();
  // An absurd learning rate with an exponential conjugate overflows within a few steps.
  auto r = run_cli("train --out " + out +
                   " --seed 1 --steps 500 --set train.lr_g=1000.0 --set train.lr_d=1000.0"
                   " --set train.checkpoint_every=1 --set generator.net=mlp --set potential.net=mlp"
                   " --set train.batch_size=32 --set eval.n=0 --set train.keep_last=0");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("non-finite"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("newest verified checkpoint is"), std::string::npos) << r.output;
  // The newest checkpoint verifies, and the error is in log.txt too.
  fs::path dir = *fs::directory_iterator(out);
  const auto ckpt = latest_checkpoint(dir.string());
  ASSERT_FALSE(ckpt.empty());
  EXPECT_NO_THROW(read_checkpoint(ckpt));
  EXPECT_NE(read_file((dir / "log.txt").string()).find("error: non-finite"), std::string::npos);
}

TEST_F(TrainTest, SigintWritesACheckpointAndTheRunResumes) {
  auto out = (root_ / "runs").string();
  const std::string train_cmd = std::string(UOTFLOW_BINARY_DIR) + "/uotflow train --out " + out +
                                " --seed 2 --steps 1000000 --set generator.net=mlp"
                                " --set potential.net=mlp --set eval.n=0 --set train.batch_size=16";
  // Start, wait until the run directory has a log, interrupt, and report the exit code.
  const std::string script = "sh -c '" + train_cmd + " > " + (root_ / "stdout.txt").string() +
                             " 2>&1 & pid=$!;"
                             " for i in $(seq 100); do sleep 0.1; ls " +
                             out +
                             "/*/log.txt >/dev/null 2>&1 && break; done; sleep 1;"
                             " kill -INT $pid; wait $pid; echo rc=$?'";
  const std::string result = run_shell(script).output;
  EXPECT_NE(result.find("rc=0"), std::string::npos) << result;
  auto output = read_file((root_ / "stdout.txt").string());
  EXPECT_NE(output.find("interrupted at step"), std::string::npos) << output;
  const std::string dir = last_line(output);
  const auto ckpt = latest_checkpoint(dir);
  ASSERT_FALSE(ckpt.empty()) << output;
  EXPECT_NE(read_file(dir + "/log.txt").find("interrupted at step"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir + "/final/generator.safetensors"));
  // Resuming continues from the interrupted step.
  const int64_t stopped = read_checkpoint(ckpt).manifest.step;
  EXPECT_GT(stopped, 0);
  auto r = run_cli("train --resume " + dir + " --steps " + std::to_string(stopped + 5));
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(read_file(dir + "/log.txt").find("resume from"), std::string::npos);
}
