// The HTML report of one or more runs: everything is read back from the run directories' files, so
// a report can be written during training, after it, or for runs of different methods together.
#include "uotflow/run/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "curves.h"
#include "uotflow/core/config.h"
#include "uotflow/core/error.h"
#include "uotflow/io/files.h"
#include "uotflow/io/plot.h"
#include "uotflow/io/run_dir.h"
#include "uotflow_build_info.h"

namespace uotflow {
namespace {

namespace fs = std::filesystem;

constexpr double kNoValue = std::numeric_limits<double>::quiet_NaN();

std::string base64(const std::string& bytes) {
  static constexpr char kDigits[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t v = 0;
    for (size_t k = 0; k < 3; ++k) {
      v = (v << 8) | (k < n ? static_cast<unsigned char>(bytes[i + k]) : 0u);
    }
    for (size_t k = 0; k < 4; ++k) {
      out += k <= n ? kDigits[(v >> (18 - 6 * k)) & 63] : '=';
    }
  }
  return out;
}

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string png_image(const std::string& png, const std::string& alt) {
  return "<img src=\"data:image/png;base64," + base64(png) + "\" alt=\"" + escape(alt) + "\">";
}

std::string format_value(double v) {
  if (!std::isfinite(v)) {
    return "n/a";
  }
  std::ostringstream out;
  out.precision(5);
  out << v;
  return out.str();
}

// The JSON objects of a JSON Lines file; lines that are not objects are left out.
std::vector<Json> read_rows(const fs::path& path) {
  std::vector<Json> rows;
  if (!fs::is_regular_file(path)) {
    return rows;
  }
  std::istringstream lines(read_file(path.string()));
  for (std::string line; std::getline(lines, line);) {
    Json row = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (row.is_object() && row.contains("step") && row["step"].is_number()) {
      rows.push_back(std::move(row));
    }
  }
  return rows;
}

double number(const Json& row, const char* key) {
  return row.contains(key) && row[key].is_number() ? row[key].get<double>() : kNoValue;
}

using run_detail::Curve;

struct RunData {
  fs::path dir;
  std::string name;
  Json config;
  Json meta;
  std::string method;
  std::vector<Json> eval;
  std::vector<Json> logged;
  std::string last_log_line;
  std::map<std::string, Curve> metric_curves;
  std::map<std::string, Curve> loss_curves;
};

std::string last_line_of(const fs::path& path) {
  if (!fs::is_regular_file(path)) {
    return "";
  }
  std::istringstream lines(read_file(path.string()));
  std::string last;
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) {
      last = line;
    }
  }
  return last;
}

RunData load_run(const std::string& dir) {
  RunData run;
  run.dir = fs::path(dir);
  run.name = fs::absolute(run.dir).lexically_normal().filename().string();
  if (run.name.empty()) {  // "runs/00000-x/"
    run.name = fs::absolute(run.dir).lexically_normal().parent_path().filename().string();
  }
  run.config = read_run_config(dir);
  run.meta = read_run_meta(dir);
  run.method = run.config.value("method", "");
  run.eval = read_rows(run.dir / "eval.jsonl");
  run.logged = read_rows(run.dir / "metrics.jsonl");
  run.last_log_line = last_line_of(run.dir / "log.txt");
  for (const auto& row : run.eval) {
    run_detail::add_eval_row(run.metric_curves, row);
  }
  static const std::set<std::string> kNotLosses = {"step", "time", "sec_per_step", "steps_averaged",
                                                   "lr_g", "lr_d", "lr",           "phase"};
  for (const auto& row : run.logged) {
    for (const auto& [key, value] : row.items()) {
      if (!kNotLosses.count(key) && value.is_number()) {
        auto& curve = run.loss_curves[key];
        curve.x.push_back(number(row, "step"));
        curve.y.push_back(value.get<double>());
      }
    }
  }
  return run;
}

// One figure per quantity, the runs that have it overlaid.
std::string curve_figures(const std::vector<RunData>& runs,
                          std::map<std::string, Curve> RunData::*curves, const std::string& what) {
  std::vector<std::string> names;  // in order of first appearance over the runs
  for (const auto& run : runs) {
    for (const auto& [name, curve] : run.*curves) {
      if (std::find(names.begin(), names.end(), name) == names.end()) {
        names.push_back(name);
      }
    }
  }
  std::string html;
  for (const auto& name : names) {
    LinePlot plot;
    plot.y_label = name;
    plot.title = (runs.size() == 1 ? runs[0].name + ": " : "") + name;
    std::string alt = name + " (" + what + ") of";
    std::string x_label;
    for (const auto& run : runs) {
      const auto it = (run.*curves).find(name);
      if (it == (run.*curves).end()) {
        continue;
      }
      plot.series.push_back(LineSeries{run.name, it->second.x, it->second.y});
      // Runs whose curves of one metric are on different axes share "flow time".
      const auto label = run_detail::curve_x_label(it->second);
      x_label = x_label.empty() || x_label == label ? label : "flow time";
      alt += " " + run.name;
    }
    plot.x_label = x_label;
    html += "<figure>" + png_image(line_plot_png(plot), alt) + "</figure>\n";
  }
  return html;
}

// The newest value of each metric per run, with where it comes from.
std::string metrics_table(const std::vector<RunData>& runs) {
  std::vector<std::string> names;
  for (const auto& run : runs) {
    for (const auto& row : run.eval) {
      const auto name = row.value("metric", "");
      if (!name.empty() && std::find(names.begin(), names.end(), name) == names.end()) {
        names.push_back(name);
      }
    }
  }
  if (names.empty()) {
    return "<p>No evaluation yet.</p>\n";
  }
  std::string html = "<table>\n<tr><th>metric</th>";
  for (const auto& run : runs) {
    html += "<th>" + escape(run.name) + "</th>";
  }
  html += "</tr>\n";
  for (const auto& name : names) {
    html += "<tr><td>" + escape(name) + "</td>";
    for (const auto& run : runs) {
      const Json* newest = nullptr;
      for (const auto& row : run.eval) {
        if (row.value("metric", "") == name &&
            (!newest || number(row, "step") >= number(*newest, "step"))) {
          newest = &row;
        }
      }
      if (!newest) {
        html += "<td></td>";
        continue;
      }
      std::ostringstream source;
      source << "eval.jsonl, step " << (*newest)["step"].dump();
      for (const char* key : {"phase", "time", "n", "ema", "seed"}) {
        if (newest->contains(key)) {
          source << ", " << key << " " << (*newest)[key].dump();
        }
      }
      for (const auto& [key, value] : newest->items()) {  // e.g. the feature extractor's provenance
        static const std::set<std::string> kShown = {"step", "metric", "value", "phase",
                                                     "time", "n",      "ema",   "seed"};
        if (!kShown.count(key)) {
          source << ", " << key << " "
                 << (value.is_string() ? value.get<std::string>() : value.dump());
        }
      }
      html += "<td><b>" + format_value(number(*newest, "value")) + "</b><br><small>" +
              escape(source.str()) + "</small></td>";
    }
    html += "</tr>\n";
  }
  return html + "</table>\n";
}

// samples/final.png, else the newest samples/step-*.png; and samples/phases.png.
std::vector<std::pair<fs::path, std::string>> pictures(const RunData& run) {
  std::vector<std::pair<fs::path, std::string>> out;
  const auto samples = run.dir / "samples";
  if (fs::is_regular_file(samples / "final.png")) {
    out.emplace_back(samples / "final.png", "final samples");
  } else if (fs::is_directory(samples)) {
    fs::path newest;
    for (const auto& entry : fs::directory_iterator(samples)) {
      const auto name = entry.path().filename().string();
      if (name.rfind("step-", 0) == 0 && entry.path().extension() == ".png" &&
          (newest.empty() || name > newest.filename().string())) {
        newest = entry.path();
      }
    }
    if (!newest.empty()) {
      out.emplace_back(newest, "samples at " + newest.stem().string());
    }
  }
  if (fs::is_regular_file(samples / "phases.png")) {
    out.emplace_back(samples / "phases.png", "the phases");
  }
  return out;
}

std::string run_header(const RunData& run) {
  const int64_t done = run.logged.empty() ? 0 : run.logged.back()["step"].get<int64_t>();
  int64_t total = run.meta.value("steps", int64_t{0});
  if (total <= 0 && run.config.contains("train")) {
    total = run.config["train"].value("steps", int64_t{0});
  }
  std::string data = run.config.contains("data") ? run.config["data"].value("name", "") : "";
  if (run.config.contains("functional") && run.config["functional"].is_object()) {
    data = run.config["functional"].value("name", data);
  }
  std::ostringstream html;
  html << "<p class=\"run\"><b>" << escape(run.name) << "</b>: method <code>" << escape(run.method)
       << "</code>, " << (run.config.contains("functional") ? "functional" : "data") << " <code>"
       << escape(data) << "</code>, device <code>" << escape(run.meta.value("device", "?"))
       << "</code>, " << done << (total > 0 ? " of " + std::to_string(total) : "")
       << " steps, seed " << run.config.value("seed", Json()).dump() << ", created "
       << escape(run.meta.value("created", "?")) << "<br><small>log: " << escape(run.last_log_line)
       << "</small></p>\n";
  return html.str();
}

constexpr const char* kStyle =
    R"(body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1400px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
small{color:#666}figure{display:inline-block;margin:0 8px 8px 0}img{max-width:100%}
pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:.85em}.run{margin:.3em 0})";

}  // namespace

void write_report(const std::vector<std::string>& run_dirs, const std::string& out_path) {
  if (run_dirs.empty()) {
    throw ConfigError("report: name at least one run directory");
  }
  std::vector<RunData> runs;
  for (const auto& dir : run_dirs) {
    runs.push_back(load_run(dir));
  }
  std::string title;
  for (const auto& run : runs) {
    title += (title.empty() ? "" : ", ") + run.name;
  }
  std::string html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  html += "<title>uotflow report: " + escape(title) + "</title>\n<style>" + std::string(kStyle) +
          "</style>\n</head>\n<body>\n<h1>uotflow report: " + escape(title) + "</h1>\n";
  html += "<p><small>written " + iso_time() + " by uotflow " + UOTFLOW_VERSION +
          "; the pictures are embedded, so this file can be moved or sent alone</small></p>\n";
  for (const auto& run : runs) {
    html += run_header(run);
  }
  html += "<h2>Final metrics</h2>\n" + metrics_table(runs);
  html += "<h2>Metrics</h2>\n" + curve_figures(runs, &RunData::metric_curves, "eval.jsonl");
  html +=
      "<h2>Training losses</h2>\n" + curve_figures(runs, &RunData::loss_curves, "metrics.jsonl");
  html += "<h2>Samples</h2>\n";
  for (const auto& run : runs) {
    for (const auto& [path, what] : pictures(run)) {
      html += "<figure>" + png_image(read_file(path.string()), run.name + ": " + what) +
              "<figcaption>" + escape(run.name + ": " + what) + "</figcaption></figure>\n";
    }
  }
  html += "<h2>Config</h2>\n";
  for (const auto& run : runs) {
    html += "<details><summary>" + escape(run.name) + "/config.json (resolved)</summary><pre>" +
            escape(run.config.dump(2)) + "</pre></details>\n";
  }
  html += "</body>\n</html>\n";
  write_file_atomic(out_path, html);
}

}  // namespace uotflow
