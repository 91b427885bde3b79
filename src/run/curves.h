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
  bool flow_time = false;  ///< x is the flow time of the row, not the step
  std::string time_axis;   ///< the axis of that time: "W-time" (the default) or the row's own
};

/// Appends an eval.jsonl row {"metric", "step", "value"[, "time"[, "time_axis"]]} to
/// curves[metric]: a metric measured at a flow time (ou_kl) is drawn against it, on the axis the
/// row names ("W-time" when it names none), the others against steps; a value that is not a
/// number (null) is NaN and breaks the line. Rows without a metric name are skipped.
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
  curve.time_axis = row.contains("time_axis") && row["time_axis"].is_string()
                        ? row["time_axis"].get<std::string>()
                        : "W-time";
  curve.x.push_back(number(curve.flow_time ? "time" : "step"));
  curve.y.push_back(number("value"));
}

/// The x axis of a curve: its time axis for flow time, else "step".
inline std::string curve_x_label(const Curve& curve) {
  return curve.flow_time ? curve.time_axis : "step";
}

}  // namespace uotflow::run_detail
