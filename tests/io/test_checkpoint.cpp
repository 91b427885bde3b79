// Tests of self-verifying checkpoint files and the run-directory lock.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <sstream>

#include "run_checks.h"
#include "uotflow/io/checkpoint.h"
#include "uotflow/io/files.h"
#include "uotflow/io/run_lock.h"

namespace fs = std::filesystem;
using namespace uotflow;

namespace {

// A LibTorch archive of a few random tensors, as a run's checkpoint payload.
std::string archive_bytes() {
  torch::manual_seed(3);
  torch::serialize::OutputArchive archive;
  archive.write("step", torch::tensor(40, torch::kInt64));
  archive.write("weights", torch::randn({64, 32}));
  std::ostringstream bytes;
  archive.save_to(bytes);
  return bytes.str();
}

const Json kConfig = {{"method", "uotm"}, {"seed", 7}, {"train", {{"steps", 40}}}};

std::string error_of(const std::string& path) {
  try {
    read_checkpoint(path);
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

// A pid that is certainly dead: a child that has exited and been reaped.
pid_t dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) {
    ::_exit(0);
  }
  ::waitpid(child, nullptr, 0);
  return child;
}

}  // namespace

TEST(Checkpoint, RoundTripKeepsManifestAndPayload) {
  const auto dir = uotflow::testing::fresh_test_dir();
  const auto payload = archive_bytes();
  const auto path = (dir / "step-00000040.ckpt").string();
  write_file_atomic(path, encode_checkpoint(40, "uotm", kConfig, payload));
  const auto loaded = read_checkpoint(path);
  EXPECT_EQ(loaded.payload, payload);
  EXPECT_EQ(loaded.manifest.step, 40);
  EXPECT_EQ(loaded.manifest.method, "uotm");
  EXPECT_EQ(loaded.manifest.config, kConfig);
  EXPECT_EQ(loaded.manifest.config_sha256, config_digest(kConfig));
  EXPECT_EQ(loaded.manifest.payload_bytes, static_cast<int64_t>(payload.size()));
  EXPECT_EQ(checkpoint_step_from_name(path), 40);
  EXPECT_EQ(checkpoint_step_from_name("step-40.pt"), -1);
}

// Acceptance: a bit flipped at any of 100 random offsets (a fifth of them in the manifest) is
// detected, and nothing of the file is returned.
TEST(Checkpoint, BitFlipsAtRandomOffsetsAreAllDetected) {
  const auto dir = uotflow::testing::fresh_test_dir();
  const auto good = encode_checkpoint(40, "uotm", kConfig, archive_bytes());
  const auto header = good.size() - archive_bytes().size();
  std::mt19937_64 rng(11);
  const auto path = (dir / "step-00000040.ckpt").string();
  for (int i = 0; i < 100; ++i) {
    const size_t offset = i < 20 ? rng() % header : rng() % good.size();
    auto bad = good;
    bad[offset] = static_cast<char>(bad[offset] ^ (1 << (rng() % 8)));
    write_file_atomic(path, bad);
    const auto what = error_of(path);
    EXPECT_NE(what.find("failed verification"), std::string::npos)
        << "flip at byte " << offset << " of " << good.size() << " not detected";
    EXPECT_NE(what.find(path), std::string::npos) << what;
  }
}

TEST(Checkpoint, TruncatedLegacyAndRenamedFilesAreNamed) {
  const auto dir = uotflow::testing::fresh_test_dir();
  const auto good = encode_checkpoint(40, "uotm", kConfig, archive_bytes());
  const auto path = (dir / "step-00000040.ckpt").string();
  write_file_atomic(path, good.substr(0, good.size() - 100));
  EXPECT_NE(error_of(path).find("truncated or padded"), std::string::npos) << error_of(path);
  write_file_atomic(path, good + "x");
  EXPECT_NE(error_of(path).find("truncated or padded"), std::string::npos) << error_of(path);
  write_file_atomic(path, archive_bytes());  // a bare LibTorch archive (zip), as before manifests
  EXPECT_NE(error_of(path).find("has no manifest"), std::string::npos) << error_of(path);
  write_file_atomic(path, "");
  EXPECT_NE(error_of(path).find("bad first line"), std::string::npos) << error_of(path);
  // Another checkpoint copied under a later name.
  const auto renamed = (dir / "step-00000050.ckpt").string();
  write_file_atomic(renamed, good);
  EXPECT_EQ(error_of(renamed), "checkpoint '" + renamed +
                                   "' failed verification: the file is named for step 50 but "
                                   "holds step 40 (a checkpoint copied under another name)");
  EXPECT_NE(error_of((dir / "missing.ckpt").string()).find("cannot read"), std::string::npos);
}

// One writer per run: a second lock fails naming the holder's pid, and works once it is released.
TEST(RunLock, SecondWriterIsRefusedUntilTheFirstIsDone) {
  const auto dir = uotflow::testing::fresh_test_dir().string();
  {
    RunLock first(dir);
    try {
      RunLock second(dir);
      FAIL() << "a second lock was granted";
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()),
                "run '" + dir + "' is in use by another uotflow process (pid " +
                    std::to_string(::getpid()) + "); wait for it to finish or stop it first");
    }
  }
  EXPECT_NO_THROW(RunLock again(dir));
}

// Temp files of earlier writers go when the lock is taken (PIDs are not asked whether they are
// alive: they are reused); the lock holder's own and other files stay.
TEST(RunLock, RemovesTempFilesOfEarlierWriters) {
  const auto dir = uotflow::testing::fresh_test_dir();
  fs::create_directories(dir / "checkpoints");
  const auto dead =
      dir / "checkpoints" / ("step-00000010.ckpt.uotflow-tmp." + std::to_string(dead_pid()));
  const auto live = dir / ("config.json.uotflow-tmp." + std::to_string(::getpid()));
  // pid 1 is alive, but not a writer of the run
  const auto pid_reused = dir / "eval.jsonl.uotflow-tmp.1";
  const auto other = dir / "notes.tmp.txt";
  const auto users = dir / "samples" / "notes.tmp.42";  // a user's file, not a temp of ours
  fs::create_directories(dir / "samples");
  for (const auto& p : {dead, live, pid_reused, other, users}) {
    write_file_atomic(p.string(), "x");
  }
  RunLock lock(dir.string());
  EXPECT_EQ(lock.removed_temp_files(), 2);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_FALSE(fs::exists(pid_reused));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(other));
  EXPECT_TRUE(fs::exists(users));
}

TEST(RunLock, EnclosingRunDirIsFoundFromInsidePaths) {
  const auto dir = uotflow::testing::fresh_test_dir();
  fs::create_directories(dir / "run" / "samples");
  write_file_atomic((dir / "run" / "config.json").string(), R"({"seed": 1, "meta": {}})");
  write_file_atomic((dir / "plain.json").string(), "{}");
  const auto run = fs::weakly_canonical(dir / "run").string();
  EXPECT_EQ(enclosing_run_dir((dir / "run" / "samples" / "x.npy").string()), run);
  EXPECT_EQ(enclosing_run_dir((dir / "run" / "final" / "new" / "x.npy").string()), run);
  EXPECT_EQ(enclosing_run_dir((dir / "x.npy").string()), "");
}
