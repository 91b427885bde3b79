// Fuzzing of every reader of user files: the corpus in tests/fuzz/corpus/ (hand-made hostile
// inputs) and seeded mutants (bit flips, truncations, inserted bytes, overwritten runs) of valid
// files. Every input must either load or raise a ConfigError: no crash, no other exception type.
// `make test-sanitize` runs this under AddressSanitizer and UndefinedBehaviorSanitizer.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <map>
#include <random>

#include "run_checks.h"
#include "uotflow/core/config.h"
#include "uotflow/core/error.h"
#include "uotflow/data/dataset.h"
#include "uotflow/data/images.h"
#include "uotflow/data/tabular.h"
#include "uotflow/io/checkpoint.h"
#include "uotflow/io/files.h"
#include "uotflow/io/npy.h"
#include "uotflow/io/safetensors.h"
#include "uotflow/run/config.h"
#include "uotflow_build_info.h"

namespace fs = std::filesystem;
using namespace uotflow;

namespace {

using Reader = std::function<void(const std::string& path)>;

// The reader of each kind of file, by the corpus files' name prefix.
const std::map<std::string, Reader>& readers() {
  static const std::map<std::string, Reader> r = {
      {"config", [](const std::string& p) { resolve_config(read_json_file(p), {}, {}); }},
      {"npy", [](const std::string& p) { load_npy(p); }},
      {"npz", [](const std::string& p) { load_npz(p); }},
      {"safetensors", [](const std::string& p) { load_safetensors(p); }},
      {"ckpt",
       [](const std::string& p) {
         read_checkpoint_manifest(p);  // the cheap check a resume makes first
         read_checkpoint(p);
       }},
      {"idx", [](const std::string& p) { read_idx(p); }},
      {"csv", [](const std::string& p) { load_points(p); }},
      {"sklearn", [](const std::string& p) { read_sklearn_csv(p); }},
      {"arff", [](const std::string& p) { read_arff(p); }},
      {"cifar", [](const std::string& p) { read_cifar_batch(p); }},
  };
  return r;
}

// "" when `read` loads the file or raises a ConfigError, else what went wrong.
std::string misbehaviour(const Reader& read, const std::string& path) {
  try {
    read(path);
  } catch (const ConfigError&) {
  } catch (const std::exception& e) {
    return path + ": not a ConfigError: " + e.what();
  }
  return "";
}

// Valid files of each kind, the seeds of the mutants.
std::map<std::string, std::string> seed_files(const fs::path& dir) {
  torch::manual_seed(0);
  const auto x = torch::randn({6, 3});
  std::map<std::string, std::string> seeds;
  const auto path = [&](const std::string& name) { return (dir / name).string(); };
  save_npy(path("seed.npy"), x);
  seeds["npy"] = path("seed.npy");
  save_npz(path("seed.npz"), {{"mu", x[0]}, {"sigma", x.t().mm(x)}});
  seeds["npz"] = path("seed.npz");
  save_safetensors(path("seed.safetensors"), {{"w", x}, {"b", x[1]}});
  seeds["safetensors"] = path("seed.safetensors");
  write_file_atomic(path("seed.ckpt"), encode_checkpoint(3, "uotm", {{"seed", 1}}, "payload"));
  seeds["ckpt"] = path("seed.ckpt");
  write_file_atomic(path("seed.json"),
                    R"({"train": {"steps": 10, "lr_g": 1e-4}, "eval": {"metrics": ["sw2"]}})");
  seeds["config"] = path("seed.json");
  std::string idx = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2};
  idx += std::string(8, '\x7f');
  write_file_atomic(path("seed.idx"), idx);
  seeds["idx"] = path("seed.idx");
  write_file_atomic(path("seed.csv"), "x,y\n1.5,2\n-3,4e-2\n");
  seeds["csv"] = path("seed.csv");
  write_file_atomic(path("seed.sklearn"), "2,2,a,b\n1.0,2.0,0\n3.0,4.0,1\n");
  seeds["sklearn"] = path("seed.sklearn");
  write_file_atomic(path("seed.arff"),
                    "@relation r\n@attribute a numeric\n@attribute 'b c' {x, y}\n@data\n1,x\n"
                    "2,'y'\n% note\n");
  seeds["arff"] = path("seed.arff");
  write_file_atomic(path("seed.cifar"), std::string(2 * 3073, '\x05'));
  seeds["cifar"] = path("seed.cifar");
  return seeds;
}

// One seeded mutant of `bytes`.
std::string mutate(std::string bytes, std::mt19937_64& rng) {
  const auto at = [&] { return bytes.empty() ? size_t{0} : rng() % bytes.size(); };
  switch (rng() % 5) {
    case 0:  // flip a few bits
      for (int i = 0, n = 1 + rng() % 4; i < n && !bytes.empty(); ++i) {
        bytes[at()] ^= static_cast<char>(1 << (rng() % 8));
      }
      break;
    case 1:  // truncate
      bytes.resize(at());
      break;
    case 2:  // insert bytes
      bytes.insert(at(), std::string(1 + rng() % 16, static_cast<char>(rng() % 256)));
      break;
    case 3: {  // overwrite a run with an extreme byte
      const auto start = at();
      for (size_t i = start; i < std::min(bytes.size(), start + 1 + rng() % 8); ++i) {
        bytes[i] = (rng() % 2) ? '\xff' : '\0';
      }
      break;
    }
    default:  // swap in a digit or bracket (text formats)
      if (!bytes.empty()) {
        bytes[at()] = "0123456789-+.e[]{}\",:"[rng() % 21];
      }
  }
  return bytes;
}

}  // namespace

TEST(Fuzz, CorpusFilesLoadOrGiveConfigErrors) {
  const fs::path corpus = fs::path(UOTFLOW_SOURCE_DIR) / "tests" / "fuzz" / "corpus";
  int files = 0;
  for (const auto& e : fs::directory_iterator(corpus)) {
    const auto name = e.path().filename().string();
    const auto kind = name.substr(0, name.find('-'));
    ASSERT_TRUE(readers().count(kind)) << name << ": no reader for '" << kind << "'";
    EXPECT_EQ(misbehaviour(readers().at(kind), e.path().string()), "");
    ++files;
  }
  EXPECT_GE(files, 25);
}

// The corpus files that once gave a raw or misleading message (or none): the message names the
// cause. Each file is refused by its reader.
TEST(Fuzz, CorpusErrorsNameTheirCause) {
  const fs::path corpus = fs::path(UOTFLOW_SOURCE_DIR) / "tests" / "fuzz" / "corpus";
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"config-float32-overflow.json", "config key 'train.lr_g' is 1e+300, beyond what float32"},
      {"config-float-in-list.json", "config key 'data.params.mean[0]' is 1e+39"},
      {"config-overflow.json", "at key 'train.steps'"},
      {"npy-negative-dim.npy", "'shape' has a negative size in (-3, 2)"},
      {"npy-negative-second-dim.npy", "'shape' has a negative size in (3, -2)"},
      {"npy-shape-beyond-int64.npy", "'shape' has a size beyond 2^63 - 1"},
      {"ckpt-no-newline.ckpt", "failed verification: truncated manifest"},
      {"ckpt-bad-digest.ckpt", "the manifest does not match its SHA-256"},
  };
  for (const auto& [name, expect] : expected) {
    const auto path = (corpus / name).string();
    std::string what = "(loaded)";
    try {
      readers().at(name.substr(0, name.find('-')))(path);
    } catch (const ConfigError& e) {
      what = e.what();
    }
    EXPECT_NE(what.find(expect), std::string::npos) << name << ": " << what;
  }
}

TEST(Fuzz, MutantsOfValidFilesLoadOrGiveConfigErrors) {
  const auto dir = uotflow::testing::fresh_test_dir();
  std::mt19937_64 rng(2026);
  for (const auto& [kind, seed] : seed_files(dir)) {
    const auto& read = readers().at(kind);
    ASSERT_EQ(misbehaviour(read, seed), "") << "the seed itself";
    const auto good = read_file(seed);
    const auto mutant = (dir / ("mutant-" + fs::path(seed).filename().string())).string();
    for (int i = 0; i < 150; ++i) {
      write_file_atomic(mutant, mutate(good, rng));
      EXPECT_EQ(misbehaviour(read, mutant), "") << kind << " mutant " << i;
    }
  }
}
