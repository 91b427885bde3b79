// Private to src/run: a metric's values against steps or flow time, read from eval.jsonl rows. One
// reader for plots/METRIC.png (RunOutputs) and for the report's figures.
#pragma once

#include <limits>
#include <map>
#include <string>
#include <vector>

#include "uotflow/core/config.h"

namespace uotflow::run_detail {

struct Curve {
  std::vector<double> x, y;
  bool flow_time = false;  ///< x is the flow time of the phase (W-time, SW-time), not the step
};

/// Appends an eval.jsonl row {"metric", "step", "value"[, "time"]} to curves[metric]: a metric
/// measured at a flow time (ou_kl) is drawn against it, the others against steps; a value that is
/// not a number (null) is NaN and breaks the line. Rows without a metric name are skipped.
inline void add_eval_row(std::map<std::string, Curve>& curves, const Json& row) {
  if (!row.contains("metric") || !row["metric"].is_string()) {
    return;
  }
  auto number = [&row](const char* key) {
    return row.contains(key) && row[key].is_number() ? row[key].get<double>()
                                                     : std::numeric_limits<double>::quiet_NaN();
  };
  auto& curve = curves[row["metric"].get<std::string>()];
  curve.flow_time = row.contains("time") && row["time"].is_number();
  curve.x.push_back(number(curve.flow_time ? "time" : "step"));
  curve.y.push_back(number("value"));
}

/// The x axis of a curve of a run of `method`: "SW-time" (swjko) or "W-time" for flow time.
inline std::string curve_x_label(const Curve& curve, const std::string& method) {
  return curve.flow_time ? (method == "swjko" ? "SW-time" : "W-time") : "step";
}

}  // namespace uotflow::run_detail
