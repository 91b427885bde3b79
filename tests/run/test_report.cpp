// Tests of the HTML report: what train writes at each evaluation, `uotflow report` over runs of
// different methods (overlaid curves), well-formed self-contained HTML whose every picture decodes,
// and the page as headless Chromium renders it.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cctype>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "png_checks.h"
#include "run_checks.h"
#include "uotflow/core/error.h"
#include "uotflow/io/files.h"
#include "uotflow/io/run_lock.h"
#include "uotflow/run/commands.h"
#include "uotflow/run/report.h"
#include "uotflow/run/run.h"

namespace fs = std::filesystem;
using namespace uotflow;
using uotflow::testing::decode_png;
using uotflow::testing::Image;
using uotflow::testing::is_colour;
using uotflow::testing::run_cli;
using uotflow::testing::run_shell;
using uotflow::testing::tiny_config;
using uotflow::testing::tiny_sjko;

namespace {

class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = uotflow::testing::fresh_test_dir();
    options_.out_root = (root_ / "runs").string();
  }
  fs::path root_;
  TrainOptions options_;
};

std::vector<int> base64_table() {
  std::vector<int> table(256, -1);
  const std::string digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < digits.size(); ++i) {
    table[static_cast<unsigned char>(digits[i])] = static_cast<int>(i);
  }
  return table;
}

std::string decode_base64(const std::string& text) {
  static const auto table = base64_table();
  std::string bytes;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    if (c == '=') {
      break;
    }
    const int v = table[static_cast<unsigned char>(c)];
    EXPECT_GE(v, 0) << "bad base64 character '" << c << "'";
    acc = (acc << 6) | static_cast<uint32_t>(std::max(v, 0));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return bytes;
}

// The value of attribute `name` in the tag that starts at `at`.
std::string attribute(const std::string& html, size_t at, const std::string& name) {
  const size_t end = html.find('>', at);
  const size_t start = html.find(" " + name + "=\"", at);
  if (start == std::string::npos || start > end) {
    return "";
  }
  const size_t value = start + name.size() + 3;
  return html.substr(value, html.find('"', value) - value);
}

// Every <img> of the page, in order: its alt text and its decoded picture. Fails on any src or
// href that is not an embedded PNG (a file, a link: what a moved or mailed report would lose).
std::vector<std::pair<std::string, Image>> embedded_images(const std::string& html) {
  const std::string prefix = "data:image/png;base64,";
  for (const char* attr : {"src=\"", "href=\""}) {
    for (size_t at = html.find(attr); at != std::string::npos; at = html.find(attr, at + 1)) {
      const size_t value = at + std::string(attr).size();
      EXPECT_EQ(html.compare(value, prefix.size(), prefix), 0)
          << "not an embedded PNG: " << html.substr(value, 80);
    }
  }
  std::vector<std::pair<std::string, Image>> out;
  for (size_t at = html.find("<img "); at != std::string::npos; at = html.find("<img ", at + 1)) {
    const auto src = attribute(html, at, "src");
    out.emplace_back(attribute(html, at, "alt"),
                     decode_png(decode_base64(src.substr(std::min(src.size(), prefix.size())))));
  }
  return out;
}

// The elements the report uses open and close in order (void elements excepted), and the page is
// one <html> with a <head> and a <body>. Text inside <style> and <pre> holds no '<' (escaped).
void expect_well_formed(const std::string& html) {
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  const std::vector<std::string> void_elements = {"img", "br", "meta"};
  std::vector<std::string> open;
  std::map<std::string, int> count;
  for (size_t at = html.find('<', 1); at != std::string::npos; at = html.find('<', at + 1)) {
    const bool closing = html.compare(at + 1, 1, "/") == 0;
    const size_t name_start = at + 1 + closing;
    size_t name_end = name_start;
    while (name_end < html.size() && std::isalnum(static_cast<unsigned char>(html[name_end]))) {
      ++name_end;
    }
    const std::string name = html.substr(name_start, name_end - name_start);
    ASSERT_FALSE(name.empty()) << "a bare '<' at " << at << ": " << html.substr(at, 40);
    ASSERT_NE(html.find('>', at), std::string::npos) << "<" << name << " is never ended";
    if (std::find(void_elements.begin(), void_elements.end(), name) != void_elements.end()) {
      continue;
    }
    if (!closing) {
      open.push_back(name);
      ++count[name];
      continue;
    }
    ASSERT_FALSE(open.empty()) << "</" << name << "> closes nothing";
    ASSERT_EQ(open.back(), name) << "</" << name << "> closes <" << open.back() << ">";
    open.pop_back();
  }
  EXPECT_TRUE(open.empty()) << "<" << (open.empty() ? "" : open.back()) << "> is never closed";
  EXPECT_EQ(count["html"], 1);
  EXPECT_EQ(count["head"], 1);
  EXPECT_EQ(count["body"], 1);
}

// Pixels of a palette colour in a picture.
int pixels_of(const Image& image, int r, int g, int b) {
  int n = 0;
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      n += is_colour(image.at(x, y), r, g, b);
    }
  }
  return n;
}

constexpr int kBlue[] = {31, 119, 180};    // the first series, and the samples of scatter plots
constexpr int kOrange[] = {255, 127, 14};  // the second series

}  // namespace

// train writes report.html at each evaluation: after the run, it holds the last evaluation, the
// final samples, every curve, the config, and the end of the log; each picture decodes.
TEST_F(ReportTest, TrainWritesASelfContainedReportOfTheRun) {
  const auto run = train(tiny_config(20), options_).run_dir;
  const auto html = read_file(run + "/report.html");
  expect_well_formed(html);
  const auto images = embedded_images(html);
  const auto name = fs::path(run).filename().string();
  std::vector<std::string> alts;
  for (const auto& [alt, image] : images) {
    alts.push_back(alt);
    EXPECT_GT(image.width, 100) << alt;
    EXPECT_GT(image.height, 100) << alt;
  }
  for (const auto& expected :
       {"sw2 (eval.jsonl) of " + name, "energy (eval.jsonl) of " + name,
        "loss_v (metrics.jsonl) of " + name, "loss_g (metrics.jsonl) of " + name,
        "r1 (metrics.jsonl) of " + name, name + ": final samples"}) {
    EXPECT_NE(std::find(alts.begin(), alts.end(), expected), alts.end()) << expected;
  }
  // The newest sw2 is the step-20 row of eval.jsonl, and the table says so.
  double sw2 = -1;
  for (const auto& row : uotflow::testing::read_jsonl(run + "/eval.jsonl")) {
    if (row["metric"] == "sw2" && row["step"] == 20) {
      sw2 = row["value"].get<double>();
    }
  }
  std::ostringstream value;
  value.precision(5);
  value << sw2;
  EXPECT_NE(html.find("<td><b>" + value.str() + "</b><br><small>eval.jsonl, step 20, n 200"),
            std::string::npos);
  EXPECT_NE(html.find("20 of 20 steps"), std::string::npos);
  EXPECT_NE(html.find("done at step 20"), std::string::npos);
  EXPECT_NE(html.find("&quot;r1_gamma&quot;: 0.2"), std::string::npos);  // the config, escaped
  // The samples are drawn in blue over the grey data.
  const auto& samples = images.back().second;
  EXPECT_GT(pixels_of(samples, kBlue[0], kBlue[1], kBlue[2]), 200);
}

// Acceptance 3: runs of two methods on the same data in one report: one figure per metric with
// both curves (blue, orange) and a legend, and a table column per run.
TEST_F(ReportTest, OverlaysRunsOfDifferentMethods) {
  const auto uotm = train(tiny_config(20), options_).run_dir;
  const auto sjko = train(tiny_sjko(), options_).run_dir;
  const auto out = (root_ / "both.html").string();
  EXPECT_EQ(write_run_report({uotm, sjko}, out), out);
  const auto html = read_file(out);
  expect_well_formed(html);
  const auto a = fs::path(uotm).filename().string();
  const auto b = fs::path(sjko).filename().string();
  EXPECT_NE(html.find("<th>" + a + "</th><th>" + b + "</th>"), std::string::npos);
  bool found = false;
  for (const auto& [alt, image] : embedded_images(html)) {
    if (alt == "sw2 (eval.jsonl) of " + a + " " + b) {
      found = true;
      EXPECT_GT(pixels_of(image, kBlue[0], kBlue[1], kBlue[2]), 100);
      EXPECT_GT(pixels_of(image, kOrange[0], kOrange[1], kOrange[2]), 100);
    }
  }
  EXPECT_TRUE(found) << "no overlaid sw2 figure";
  EXPECT_NE(html.find(b + ": the phases"), std::string::npos);  // the S-JKO phase strip
  EXPECT_FALSE(fs::exists(fs::path(uotm) / "both.html"));
}

// The command line: the default path is the first run's report.html; bad input is a one-line
// error with exit 2 and changes nothing.
TEST_F(ReportTest, CommandLine) {
  const auto run = train(tiny_config(10), options_).run_dir;
  fs::remove(run + "/report.html");
  auto r = run_cli("report " + run);
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(uotflow::testing::last_line(r.output), run + "/report.html");
  EXPECT_TRUE(fs::is_regular_file(run + "/report.html"));

  r = run_cli("report " + (root_ / "nothing").string());
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("not a run directory"), std::string::npos) << r.output;

  const auto existing = (root_ / "existing.html").string();
  write_file_atomic(existing, "keep");
  r = run_cli("report " + run + " --out " + existing);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("pass --overwrite"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(existing), "keep");
  r = run_cli("report " + run + " --out " + existing + " --overwrite");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(read_file(existing).find("<!DOCTYPE html>"), std::string::npos);

  RunLock held(run);  // as while the run trains: it refreshes its own report
  r = run_cli("report " + run);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("in use by another uotflow process"), std::string::npos) << r.output;
}

// Acceptance 2: Debian's headless Chromium renders the report of a short S-JKO run to a
// screenshot that shows the pictures (blue samples and curves), not broken-image icons.
TEST_F(ReportTest, ChromiumRendersThePictures) {
  const auto run = train(tiny_sjko(), options_).run_dir;
  const auto shot = (root_ / "shot.png").string();
  const auto chromium = run_shell("command -v chromium");
  ASSERT_EQ(chromium.code, 0) << "chromium is not installed: run `make setup`";
  const auto r = run_shell(
      "timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage "
      "--hide-scrollbars --no-first-run --user-data-dir=" +
      (root_ / "chromium-profile").string() + " --window-size=1400,2400 --screenshot=" + shot +
      " file://" + fs::absolute(run + "/report.html").string() + " 2>&1");
  ASSERT_TRUE(fs::is_regular_file(shot)) << r.output;
  const Image image = decode_png(read_file(shot));
  EXPECT_EQ(image.width, 1400);
  EXPECT_EQ(image.height, 2400);
  // Broken pictures would leave the page black text on white: the samples, the phase strip and
  // every one-run curve are drawn in blue.
  EXPECT_GT(pixels_of(image, kBlue[0], kBlue[1], kBlue[2]), 5000);
}
