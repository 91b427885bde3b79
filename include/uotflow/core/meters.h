// Meters a training loop calls: running means of named values and a throughput / ETA timer.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>

namespace uotflow {

/// Running means of named values between two resets.
///
///   AverageMeter losses;
///   losses.add({{"loss_g", 0.5}});
///   double m = losses.means().at("loss_g");
class AverageMeter {
 public:
  void add(const std::map<std::string, double>& values) {
    for (const auto& [k, v] : values) {
      sums_[k] += v;
    }
    ++count_;
  }
  std::map<std::string, double> means() const {
    std::map<std::string, double> out;
    for (const auto& [k, v] : sums_) {
      out[k] = v / static_cast<double>(std::max<int64_t>(count_, 1));
    }
    return out;
  }
  void reset() {
    sums_.clear();
    count_ = 0;
  }

 private:
  std::map<std::string, double> sums_;
  int64_t count_ = 0;
};

/// Steps per second since a start, per tick, and the time left for a number of steps.
class TimeMeter {
 public:
  using Clock = std::chrono::steady_clock;

  /// `steps` done when the meter starts.
  explicit TimeMeter(int64_t steps = 0) : first_(steps), tick_first_(steps) {}

  /// Seconds since the start.
  double elapsed() const {
    return seconds_since(start_);
  }
  /// Seconds per step since the last tick, at `steps` done; starts a new tick.
  double tick(int64_t steps) {
    const double per_step = seconds_since(tick_start_) / std::max<int64_t>(steps - tick_first_, 1);
    tick_start_ = Clock::now();
    tick_first_ = steps;
    return per_step;
  }
  /// Steps per second since the start, at `steps` done.
  double rate(int64_t steps) const {
    return static_cast<double>(steps - first_) / std::max(elapsed(), 1e-9);
  }
  /// Seconds left until `total` steps at the rate so far.
  double eta(int64_t steps, int64_t total) const {
    return static_cast<double>(total - steps) / std::max(rate(steps), 1e-9);
  }

 private:
  static double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  }
  Clock::time_point start_ = Clock::now();
  Clock::time_point tick_start_ = start_;
  int64_t first_;
  int64_t tick_first_;
};

}  // namespace uotflow
