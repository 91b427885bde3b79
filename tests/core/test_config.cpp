// Tests of strict config parsing and merging.
#include <gtest/gtest.h>

#include "uotflow/core/config.h"
#include "uotflow/core/error.h"
#include "uotflow/core/registry.h"
#include "uotflow/core/rng.h"

using uotflow::apply_overrides;
using uotflow::ConfigError;
using uotflow::Json;

namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

Json defaults() {
  return Json{{"a", 1},
              {"b", {{"x", 1.5}, {"name", "kl"}}},
              {"open", Json::object()},
              {"maybe", nullptr},
              {"list", Json::array({"sw2"})}};
}

}  // namespace

TEST(Config, ParsesCommentsAndRejectsDuplicates) {
  auto j = uotflow::parse_json("{\n// a comment\n\"a\": 1 /* inline */}", "test");
  EXPECT_EQ(j["a"], 1);
  auto msg = error_of([] { uotflow::parse_json(R"({"a": 1, "b": {"c": 1, "c": 2}})", "f.json"); });
  EXPECT_NE(msg.find("duplicate key 'c'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("f.json"), std::string::npos) << msg;
  // The same key in different objects is fine.
  EXPECT_NO_THROW(uotflow::parse_json(R"({"a": {"c": 1}, "b": {"c": 2}})", "f"));
  msg = error_of([] { uotflow::parse_json("{\"a\": ", "bad.json"); });
  EXPECT_NE(msg.find("bad.json: invalid JSON"), std::string::npos) << msg;
}

TEST(Config, MergeChecksKeysAndTypes) {
  Json base = defaults();
  uotflow::merge_checked(base, Json{{"a", 3},
                                    {"b", {{"x", 2}}},
                                    {"open", {{"anything", true}}},
                                    {"maybe", "text"},
                                    {"list", Json::array({"energy"})}});
  EXPECT_EQ(base["a"], 3);
  EXPECT_TRUE(base["b"]["x"].is_number_float());
  EXPECT_DOUBLE_EQ(base["b"]["x"].get<double>(), 2.0);
  EXPECT_EQ(base["b"]["name"], "kl");
  EXPECT_EQ(base["open"]["anything"], true);
  EXPECT_EQ(base["maybe"], "text");

  auto msg = error_of([] {
    Json b = defaults();
    uotflow::merge_checked(b, Json{{"b", {{"typo", 1}}}});
  });
  EXPECT_NE(msg.find("unknown config key 'b.typo'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("name"), std::string::npos) << "should list known keys: " << msg;
  msg = error_of([] {
    Json b = defaults();
    uotflow::merge_checked(b, Json{{"a", 1.5}});
  });
  EXPECT_NE(msg.find("'a' expects integer"), std::string::npos) << msg;
  msg = error_of([] {
    Json b = defaults();
    uotflow::merge_checked(b, Json{{"b", {{"name", 3}}}});
  });
  EXPECT_NE(msg.find("'b.name' expects string"), std::string::npos) << msg;
}

TEST(Config, SetOverridesParseJsonOrString) {
  Json base = defaults();
  uotflow::apply_set(base, "b.x=0.25");
  uotflow::apply_set(base, "b.name=chi2");
  uotflow::apply_set(base, "list=[\"a\",\"b\"]");
  EXPECT_DOUBLE_EQ(base["b"]["x"].get<double>(), 0.25);
  EXPECT_EQ(base["b"]["name"], "chi2");
  EXPECT_EQ(base["list"].size(), 2u);
  EXPECT_THROW(uotflow::apply_set(base, "nokey"), ConfigError);
  EXPECT_THROW(uotflow::apply_set(base, "b.zz=1"), ConfigError);
  EXPECT_THROW(uotflow::apply_set(base, "a=notanumber"), ConfigError);
  EXPECT_EQ(uotflow::get<double>(base, "b.x"), 0.25);
  auto msg = error_of([&] { uotflow::get<int>(base, "b.name"); });
  EXPECT_NE(msg.find("b.name"), std::string::npos);
  msg = error_of([&] { uotflow::at_path(base, "b.missing"); });
  EXPECT_NE(msg.find("b.missing"), std::string::npos);
}

TEST(Config, OverridesMayAddKeysBelowAnOpenDefaultAtEveryLevel) {
  // data.params defaults to {} (free-form, checked by the data set): a file that sets some keys
  // does not close it to --set, nested objects below it stay open, and closed sections stay closed.
  const Json defaults = {{"data", {{"name", "a"}, {"params", Json::object()}}}, {"lr", 1.0}};
  Json config = defaults;
  const Json file = {{"data", {{"params", {{"split", "train"}, {"base", {{"name", "b"}}}}}}}};
  apply_overrides(config, file, {"data.params.limit=50", "data.params.base.params={\"x\": 1}"},
                  {{"lr", 2}});
  EXPECT_EQ(config["data"]["params"]["split"], "train");
  EXPECT_EQ(config["data"]["params"]["limit"], 50);
  EXPECT_EQ(config["data"]["params"]["base"]["params"]["x"], 1);
  EXPECT_EQ(config["lr"].get<double>(), 2.0);
  Json closed = defaults;
  EXPECT_THROW(apply_overrides(closed, file, {"data.size=3"}, {}), ConfigError);
  EXPECT_THROW(apply_overrides(closed, Json(), {"lr=\"fast\""}, {}), ConfigError);
}

TEST(Registry, UnknownNameListsKnownOnes) {
  uotflow::Registry<int(int)> r("widget");
  r.add("double", "x2", [](int x) { return 2 * x; });
  r.add("triple", "x3", [](int x) { return 3 * x; });
  EXPECT_EQ(r.create("triple", 2), 6);
  auto msg = error_of([&] { r.create("quadruple", 1); });
  EXPECT_EQ(msg, "unknown widget 'quadruple' (known: double, triple)");
}

TEST(Rng, DerivedStreamsAreDistinctAndReproducible) {
  EXPECT_EQ(uotflow::derive_seed(1, "data"), uotflow::derive_seed(1, "data"));
  EXPECT_NE(uotflow::derive_seed(1, "data"), uotflow::derive_seed(1, "noise"));
  EXPECT_NE(uotflow::derive_seed(1, "data"), uotflow::derive_seed(2, "data"));
  EXPECT_NE(uotflow::derive_seed(1, "eval", 1), uotflow::derive_seed(1, "eval", 2));
  auto g1 = uotflow::make_stream(5, "data");
  auto g2 = uotflow::make_stream(5, "data");
  EXPECT_TRUE(torch::equal(torch::randn({10}, g1), torch::randn({10}, g2)));
}

// Nesting beyond kMaxJsonDepth is a one-line error, also far beyond it (no stack overflow).
TEST(ConfigParse, DepthLimit) {
  const auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_NO_THROW(uotflow::parse_json(nested(uotflow::kMaxJsonDepth), "ok.json"));
  for (int depth : {uotflow::kMaxJsonDepth + 1, 150000}) {
    const auto what = error_of([&] { uotflow::parse_json(nested(depth), "deep.json"); });
    EXPECT_EQ(what, "deep.json: JSON nested deeper than 256 levels") << depth;
  }
  const auto objects = error_of([] {
    std::string text;
    for (int i = 0; i < 300; ++i) {
      text += "{\"k\": ";
    }
    uotflow::parse_json(text + "1" + std::string(300, '}'), "o.json");
  });
  EXPECT_NE(objects.find("nested deeper than 256 levels at key 'k.k.k"), std::string::npos)
      << objects;
}

// A number beyond a double's range names the file and the key (not a raw parser message).
TEST(ConfigParse, NumberOverflowNamesTheKey) {
  EXPECT_EQ(
      error_of([] { uotflow::parse_json(R"({"train": {"lr": 1e-3, "steps": 1e999}})", "c.json"); }),
      "c.json: number overflow parsing '1e999' at key 'train.steps' (beyond the range of a "
      "double)");
  Json config = defaults();
  EXPECT_NE(error_of([&] { uotflow::apply_set(config, "b.x=[1e999]"); }).find("--set b.x"),
            std::string::npos);
}

TEST(ConfigDiff, ChangedKeysNameEveryDifference) {
  const Json a = {{"a", 1}, {"b", {{"x", 1.5}, {"y", "kl"}}}, {"list", {1, 2}}};
  Json b = a;
  EXPECT_TRUE(uotflow::changed_keys(a, b).empty());
  b["b"]["x"] = 2.5;
  b["list"] = {1, 3};
  b["new"] = true;
  b.erase("a");
  EXPECT_EQ(uotflow::changed_keys(a, b), (std::vector<std::string>{"a", "b.x", "list", "new"}));
}
