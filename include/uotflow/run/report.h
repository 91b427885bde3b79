// One HTML page per run (or for several runs side by side): config, final metrics, curves and
// pictures, self-contained (pictures embedded as data: URIs), readable offline without JavaScript.
#pragma once

#include <string>
#include <vector>

namespace uotflow {

/// Writes an HTML report of `run_dirs` (one or more run directories) to `out_path`, atomically:
/// - a header per run: method, data, device, steps done of the total, last log line;
/// - a table of each metric's newest value per run, with the step, sample size, EMA and seed it
///   comes from (eval.jsonl);
/// - every metric of eval.jsonl and every loss of metrics.jsonl as a line plot against steps
///   (metrics measured at a flow time, e.g. ou_kl, against W-time or SW-time), the runs overlaid
///   with a legend when there are several;
/// - each run's newest sample picture and phase strip (samples/), and its resolved config.
/// A missing or unreadable eval.jsonl / metrics.jsonl row is left out; a folder that is not a run
/// directory is a ConfigError. `uotflow report` and `train` (at each evaluation) call this.
///
///   write_report({"runs/00000-uotm-8gaussians"}, "runs/00000-uotm-8gaussians/report.html");
void write_report(const std::vector<std::string>& run_dirs, const std::string& out_path);

}  // namespace uotflow
