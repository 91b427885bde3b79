// Typed run settings: their Json edge, and the diff that lets a method's defaults stand where the
// options were left at theirs.
#include "uotflow/run/options.h"

#include "uotflow/core/error.h"
#include "uotflow/features/feature_eval.h"
#include "uotflow/run/config.h"

namespace uotflow {
namespace {

constexpr const char* kScheduleKeys[] = {
    "steps",     "log_every",           "eval_every", "snapshot_every", "checkpoint_every",
    "keep_last", "phase_weights_every", "shards"};

int64_t non_negative(const Json& config, const std::string& key) {
  const auto v = get<int64_t>(config, key);
  if (v < 0) {
    throw ConfigError("config key '" + key + "' must be >= 0, got " + std::to_string(v));
  }
  return v;
}

// The parts of `value` that differ from `defaults` (objects compared key by key).
Json changed_from(const Json& value, const Json& defaults) {
  Json out = Json::object();
  for (const auto& [key, v] : value.items()) {
    if (!defaults.contains(key)) {
      out[key] = v;
    } else if (v.is_object() && defaults[key].is_object()) {
      auto inner = changed_from(v, defaults[key]);
      if (!inner.empty()) {
        out[key] = std::move(inner);
      }
    } else if (v != defaults[key]) {
      out[key] = v;
    }
  }
  return out;
}

}  // namespace

ScheduleOptions ScheduleOptions::from_json(const Json& c) {
  return ScheduleOptions()
      .steps(non_negative(c, "train.steps"))
      .log_every(non_negative(c, "train.log_every"))
      .eval_every(non_negative(c, "train.eval_every"))
      .snapshot_every(non_negative(c, "train.snapshot_every"))
      .checkpoint_every(non_negative(c, "train.checkpoint_every"))
      .keep_last(non_negative(c, "train.keep_last"))
      .phase_weights_every(non_negative(c, "train.phase_weights_every"))
      .shards(non_negative(c, "train.shards"));
}

Json ScheduleOptions::to_json() const {
  return Json{{"train",
               {{"steps", steps()},
                {"log_every", log_every()},
                {"eval_every", eval_every()},
                {"snapshot_every", snapshot_every()},
                {"checkpoint_every", checkpoint_every()},
                {"keep_last", keep_last()},
                {"phase_weights_every", phase_weights_every()},
                {"shards", shards()}}}};
}

Json EvalOptions::default_features() {
  return default_features_section();
}

EvalOptions EvalOptions::from_json(const Json& c) {
  return EvalOptions()
      .n(non_negative(c, "eval.n"))
      .at_start(get<bool>(c, "eval.at_start"))
      .n_projections(non_negative(c, "eval.n_projections"))
      .metrics(get<std::vector<std::string>>(c, "eval.metrics"))
      .plot_radius(get<double>(c, "eval.plot_radius"))
      .features(at_path(c, "eval.features"));
}

Json EvalOptions::to_json() const {
  return Json{{"eval",
               {{"n", n()},
                {"at_start", at_start()},
                {"n_projections", n_projections()},
                {"metrics", metrics()},
                {"plot_radius", plot_radius()},
                {"features", features()}}}};
}

Json RunOptions::to_json() const {
  Json file{{"method", method()}, {"device", device()}, {"threads", threads()}};
  if (seed().has_value()) {
    file["seed"] = *seed();
  }
  if (!source().is_null()) {
    file["source"] = source();
  }
  // Keys left at the structs' defaults take the method's (a phased method fixes the length, a
  // flow of a functional evaluates no data metrics).
  Json run = ScheduleOptions().to_json();
  run.update(EvalOptions().to_json());
  Json given = schedule().to_json();
  given.update(eval().to_json());
  file.update(changed_from(given, run), /*merge_objects=*/true);
  if (!sections().is_null() && !sections().is_object()) {
    throw ConfigError("RunOptions::sections must be a JSON object of config sections");
  }
  if (sections().is_object()) {
    file.update(sections(), /*merge_objects=*/true);
  }
  return resolve_config(file, {}, {}, method());
}

RunOptions RunOptions::from_json(const Json& c) {
  RunOptions o;
  o.method(get<std::string>(c, "method"))
      .device(get<std::string>(c, "device"))
      .threads(get<int64_t>(c, "threads"))
      .source(at_path(c, "source"))
      .schedule(ScheduleOptions::from_json(c))
      .eval(EvalOptions::from_json(c));
  if (!at_path(c, "seed").is_null()) {
    o.seed(get<uint64_t>(c, "seed"));
  }
  Json sections = c;
  for (const char* key : {"method", "seed", "device", "threads", "source", "eval"}) {
    sections.erase(key);
  }
  if (sections.contains("train")) {
    for (const char* key : kScheduleKeys) {
      sections["train"].erase(key);
    }
    if (sections["train"].empty()) {
      sections.erase("train");
    }
  }
  o.sections(sections);
  return o;
}

}  // namespace uotflow
