// Tabular classification data: ARFF and sklearn-CSV readers, the named sets fetched by
// scripts/fetch_tabular.sh, and the seeded train/test split with train-only standardisation.
#include "uotflow/data/tabular.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/StringUtil.h>
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <utility>

#include "data/text.h"
#include "uotflow/core/error.h"

namespace uotflow {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    out += (out.empty() ? "" : ", ") + item;
  }
  return out;
}

// The non-blank lines of a text file, trimmed, with the line number kept for error messages.
class LineReader {
 public:
  // comment: lines starting with this character are skipped ('\0': none are).
  explicit LineReader(std::string path, char comment = '\0')
      : path_(std::move(path)), in_(path_), comment_(comment) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path_, ec) || !in_) {
      throw ConfigError("cannot read data file '" + path_ + "'");
    }
  }

  // Reads the next line that holds something; false at the end of the file.
  bool next(std::string& line) {
    while (std::getline(in_, line)) {
      ++line_number_;
      line = trim(line);
      if (!line.empty() && (comment_ == '\0' || line[0] != comment_)) {
        return true;
      }
    }
    return false;
  }

  // Raises a ConfigError about the current line (the last one once the file is read).
  [[noreturn]] void fail(const std::string& what) const {
    const std::string where = line_number_ > 0 ? ", line " + std::to_string(line_number_) : "";
    throw ConfigError("data file '" + path_ + "'" + where + ": " + what);
  }

 private:
  std::string path_;
  std::ifstream in_;
  char comment_;
  int64_t line_number_ = 0;
};

// `what` says which column the text came from.
double parse_number(const std::string& text, const std::string& what, const LineReader& at) {
  const auto value = uotflow::parse_number(text);
  if (!value || !std::isfinite(*value)) {
    at.fail("cannot parse '" + text + "' as a finite number (" + what + ")");
  }
  return *value;
}

bool is_quote(char c) {
  return c == '\'' || c == '"';
}

size_t skip_space(const std::string& text, size_t pos) {
  while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos]))) {
    ++pos;
  }
  return pos;
}

// Reads the quoted string opening at text[pos] (' or "), backslash escapes included, and moves pos
// past the closing quote.
std::string read_quoted(const std::string& text, size_t& pos, const LineReader& at) {
  const char quote = text[pos++];
  std::string out;
  while (pos < text.size() && text[pos] != quote) {
    if (text[pos] == '\\' && pos + 1 < text.size()) {
      ++pos;
    }
    out += text[pos++];
  }
  if (pos == text.size()) {
    at.fail("unterminated quote in '" + text + "'");
  }
  ++pos;
  return out;
}

// One comma-separated value, unquoted, and whether it was quoted ('?' quoted is not missing).
struct Field {
  std::string text;
  bool quoted = false;
};

// Splits a line on the commas outside quotes, up to an unquoted '%' (a comment).
std::vector<Field> split_fields(const std::string& text, const LineReader& at) {
  std::vector<Field> fields;
  size_t pos = 0;
  while (true) {
    pos = skip_space(text, pos);
    Field field;
    if (pos < text.size() && is_quote(text[pos])) {
      field = {read_quoted(text, pos, at), true};
      pos = skip_space(text, pos);
    } else {
      const size_t end = std::min(text.find_first_of(",%", pos), text.size());
      field.text = trim(text.substr(pos, end - pos));
      pos = end;
    }
    fields.push_back(std::move(field));
    if (pos == text.size() || text[pos] == '%') {
      return fields;
    }
    if (text[pos] != ',') {
      at.fail("expected ',' after the quoted value '" + fields.back().text + "'");
    }
    ++pos;
  }
}

// Rows gathered while reading a file; finish() turns them into tensors.
struct TableBuilder {
  std::vector<double> features;  // row-major
  std::vector<int64_t> labels;

  ClassificationData finish(std::vector<std::string> names, std::string positive,
                            const LineReader& at) const {
    if (labels.empty()) {
      at.fail("the file holds no data rows");
    }
    const auto rows = static_cast<int64_t>(labels.size());
    const auto columns = static_cast<int64_t>(names.size());
    return {torch::tensor(features, torch::kDouble).reshape({rows, columns}),
            torch::tensor(labels, torch::kLong), std::move(names), std::move(positive)};
  }
};

// --- ARFF ---

struct Attribute {
  std::string name;
  std::vector<std::string> values;  // the declared nominal values; empty for a numeric attribute
};

// Which attribute is the class and how the others become feature columns.
struct ArffLayout {
  std::vector<Attribute> attributes;
  size_t label = 0;
  std::string positive;
  std::vector<std::string> feature_names;
};

std::string first_word(const std::string& text) {
  return text.substr(0, std::min(text.find_first_of(" \t"), text.size()));
}

// "@attribute NAME TYPE", NAME possibly quoted, TYPE numeric|real|integer|{v1, v2, ...}.
Attribute parse_attribute(const std::string& line, const LineReader& at) {
  size_t pos = skip_space(line, first_word(line).size());
  Attribute attribute;
  if (pos < line.size() && is_quote(line[pos])) {
    attribute.name = read_quoted(line, pos, at);
  } else {
    attribute.name = first_word(line.substr(pos));
    pos += attribute.name.size();
  }
  const std::string type = trim(line.substr(pos));
  if (attribute.name.empty() || type.empty()) {
    at.fail("expected '@attribute NAME TYPE', got '" + line + "'");
  }
  if (type[0] == '{') {
    const size_t close = type.rfind('}');
    if (close == std::string::npos) {
      at.fail("the values of attribute '" + attribute.name + "' lack a closing '}'");
    }
    for (auto& field : split_fields(type.substr(1, close - 1), at)) {
      if (field.text.empty()) {
        at.fail("attribute '" + attribute.name + "' declares an empty nominal value");
      }
      attribute.values.push_back(std::move(field.text));
    }
    return attribute;
  }
  const std::string kind = lower(first_word(type));
  if (kind != "numeric" && kind != "real" && kind != "integer") {
    at.fail("attribute '" + attribute.name + "' has the unsupported type '" + type +
            "' (accepted: numeric, real, integer, {nominal values})");
  }
  return attribute;
}

// Reads up to and including the @data line.
std::vector<Attribute> read_header(LineReader& reader) {
  std::vector<Attribute> attributes;
  std::string line;
  while (reader.next(line)) {
    const std::string keyword = lower(first_word(line));
    if (keyword == "@data") {
      if (attributes.empty()) {
        reader.fail("@data comes before any @attribute");
      }
      return attributes;
    }
    if (keyword == "@attribute") {
      attributes.push_back(parse_attribute(line, reader));
    } else if (keyword != "@relation") {
      reader.fail("expected @relation, @attribute or @data, got '" + line + "'");
    }
  }
  reader.fail("the file ends without a @data section");
}

ArffLayout make_layout(std::vector<Attribute> attributes, const std::string& label,
                       const std::string& positive, const std::string& path) {
  ArffLayout layout;
  layout.label = attributes.size() - 1;
  if (!label.empty()) {
    const auto it = std::find_if(attributes.begin(), attributes.end(),
                                 [&](const Attribute& a) { return a.name == label; });
    if (it == attributes.end()) {
      std::vector<std::string> names;
      for (const auto& a : attributes) {
        names.push_back(a.name);
      }
      throw ConfigError("data file '" + path + "' has no attribute '" + label +
                        "' (attributes: " + join(names) + ")");
    }
    layout.label = static_cast<size_t>(it - attributes.begin());
  }
  const Attribute& target = attributes[layout.label];
  if (target.values.size() < 2) {
    throw ConfigError("data file '" + path + "': the class attribute '" + target.name +
                      "' must be nominal with at least two values");
  }
  layout.positive = positive.empty() ? target.values[1] : positive;
  if (std::find(target.values.begin(), target.values.end(), layout.positive) ==
      target.values.end()) {
    throw ConfigError("data file '" + path + "': the class attribute '" + target.name +
                      "' has no value '" + layout.positive + "' (declared: " + join(target.values) +
                      ")");
  }
  for (size_t i = 0; i < attributes.size(); ++i) {
    if (i == layout.label) {
      continue;
    }
    if (attributes[i].values.empty()) {
      layout.feature_names.push_back(attributes[i].name);
    }
    for (const auto& value : attributes[i].values) {
      layout.feature_names.push_back(attributes[i].name + "=" + value);
    }
  }
  layout.attributes = std::move(attributes);
  return layout;
}

// Appends the row's feature columns to `features` and returns its label (0 or 1).
int64_t parse_arff_row(const std::vector<Field>& fields, const ArffLayout& layout,
                       std::vector<double>& features, const LineReader& at) {
  const auto& attributes = layout.attributes;
  if (fields.size() != attributes.size()) {
    at.fail(std::to_string(fields.size()) + " values where the header declares " +
            std::to_string(attributes.size()) + " attributes");
  }
  int64_t label = 0;
  for (size_t i = 0; i < attributes.size(); ++i) {
    const Field& field = fields[i];
    const Attribute& attribute = attributes[i];
    if (!field.quoted && field.text == "?") {
      at.fail("missing value '?' for attribute '" + attribute.name +
              "' (missing values are not supported)");
    }
    if (attribute.values.empty()) {
      features.push_back(parse_number(field.text, "attribute '" + attribute.name + "'", at));
      continue;
    }
    const auto it = std::find(attribute.values.begin(), attribute.values.end(), field.text);
    if (it == attribute.values.end()) {
      at.fail("unknown value '" + field.text + "' for attribute '" + attribute.name +
              "' (declared: " + join(attribute.values) + ")");
    }
    if (i == layout.label) {
      label = *it == layout.positive ? 1 : 0;
      continue;
    }
    for (auto value = attribute.values.begin(); value != attribute.values.end(); ++value) {
      features.push_back(value == it ? 1.0 : 0.0);
    }
  }
  return label;
}

// --- sklearn CSV ---

constexpr const char* kSklearnHeader = "'n_samples,n_features,class_name0,class_name1'";

// A positive whole number from the header line.
int64_t parse_count(const std::string& text, const std::string& what, const LineReader& at) {
  const double value = parse_number(text, what, at);
  if (value < 1.0 || value != std::floor(value)) {
    at.fail(what + " must be a positive whole number, got '" + text + "'");
  }
  return static_cast<int64_t>(value);
}

// --- named sets ---

struct NamedSet {
  const char* name;
  const char* file;
  const char* positive;  // "" for the CSV, whose header names the classes
};

constexpr NamedSet kNamedSets[] = {
    {"german", "credit-g.arff", "good"},
    {"diabetes", "diabetes.arff", "tested_positive"},
    {"ionosphere", "ionosphere.arff", "g"},
    {"breast_cancer", "breast_cancer.csv", ""},
};

}  // namespace

ClassificationData read_arff(const std::string& path, const std::string& label,
                             const std::string& positive) {
  LineReader reader(path, '%');
  const ArffLayout layout = make_layout(read_header(reader), label, positive, path);
  TableBuilder table;
  std::string line;
  while (reader.next(line)) {
    if (line[0] == '{') {
      reader.fail("sparse rows ('{index value, ...}') are not supported");
    }
    table.labels.push_back(
        parse_arff_row(split_fields(line, reader), layout, table.features, reader));
  }
  return table.finish(layout.feature_names, layout.positive, reader);
}

ClassificationData read_sklearn_csv(const std::string& path) {
  LineReader reader(path);
  std::string line;
  if (!reader.next(line)) {
    reader.fail(std::string("the file is empty; expected a first line ") + kSklearnHeader);
  }
  const auto header = split_fields(line, reader);
  if (header.size() != 4) {
    reader.fail(std::string("expected a first line ") + kSklearnHeader + ", got '" + line + "'");
  }
  const int64_t rows = parse_count(header[0].text, "n_samples", reader);
  const int64_t columns = parse_count(header[1].text, "n_features", reader);
  TableBuilder table;
  while (reader.next(line)) {
    const auto fields = split_fields(line, reader);
    if (static_cast<int64_t>(fields.size()) != columns + 1) {
      reader.fail(std::to_string(fields.size()) + " values where the header announces " +
                  std::to_string(columns) + " features and a class");
    }
    for (int64_t j = 0; j < columns; ++j) {
      table.features.push_back(
          parse_number(fields[j].text, "feature " + std::to_string(j), reader));
    }
    const double label = parse_number(fields.back().text, "class", reader);
    if (label != 0.0 && label != 1.0) {
      reader.fail("the class must be 0 or 1, got '" + fields.back().text + "'");
    }
    table.labels.push_back(static_cast<int64_t>(label));
  }
  if (static_cast<int64_t>(table.labels.size()) != rows) {
    reader.fail("the header announces " + std::to_string(rows) + " rows but the file holds " +
                std::to_string(table.labels.size()) + " (truncated?)");
  }
  std::vector<std::string> names;
  for (int64_t j = 0; j < columns; ++j) {
    names.push_back("feature_" + std::to_string(j));
  }
  return table.finish(std::move(names), header[3].text, reader);
}

ClassificationSplit split_and_standardise(const ClassificationData& data, double test_fraction,
                                          uint64_t seed) {
  TORCH_CHECK(data.features.dim() == 2 && data.labels.dim() == 1 &&
                  data.features.size(0) == data.labels.size(0),
              "split_and_standardise: features must be [N, P] and labels [N], got ",
              data.features.sizes(), " and ", data.labels.sizes());
  const int64_t rows = data.features.size(0);
  const auto test_rows = static_cast<int64_t>(std::llround(test_fraction * rows));
  if (!(test_fraction >= 0.0 && test_fraction < 1.0) || test_rows >= rows) {
    throw ConfigError(c10::str("test_fraction must be in [0, 1) and leave at least one of the ",
                               rows, " rows for training, got ", test_fraction));
  }
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto order = torch::randperm(rows, gen, torch::kLong);
  const auto test = order.slice(0, 0, test_rows);
  const auto train = order.slice(0, test_rows);

  const auto features = data.features.to(torch::kDouble);
  const auto x_train = features.index_select(0, train);
  const auto mean = x_train.mean(0);
  // Constant columns (e.g. a nominal value absent from the train rows) are only centred.
  const auto constant = x_train.amax(0) == x_train.amin(0);
  const auto scale =
      torch::where(constant, torch::ones_like(mean), (x_train - mean).square().mean(0).sqrt());
  const auto standardise = [&](const torch::Tensor& x) { return (x - mean) / scale; };
  return {standardise(x_train), data.labels.index_select(0, train),
          standardise(features.index_select(0, test)), data.labels.index_select(0, test)};
}

ClassificationData load_classification(const std::string& name, const std::string& dir) {
  const auto* set = std::find_if(std::begin(kNamedSets), std::end(kNamedSets),
                                 [&](const NamedSet& s) { return name == s.name; });
  if (set == std::end(kNamedSets)) {
    throw ConfigError("unknown classification set '" + name +
                      "' (known: " + join(classification_names()) + ")");
  }
  const std::filesystem::path path = std::filesystem::path(dir) / set->file;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw ConfigError("classification set '" + name + "' needs the file '" + path.string() +
                      "', which is missing: run `make setup` (scripts/fetch_tabular.sh)");
  }
  if (path.extension() == ".csv") {
    return read_sklearn_csv(path.string());
  }
  return read_arff(path.string(), "", set->positive);
}

std::vector<std::string> classification_names() {
  std::vector<std::string> names;
  for (const auto& set : kNamedSets) {
    names.emplace_back(set.name);
  }
  return names;
}

}  // namespace uotflow
