// Reading finite point sets (.npy or .csv) that users hand us as data.
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "data/text.h"
#include "uotflow/core/error.h"
#include "uotflow/data/dataset.h"
#include "uotflow/io/npy.h"

namespace uotflow {
namespace {

std::vector<std::string> split_commas(const std::string& line) {
  std::vector<std::string> cells;
  size_t start = 0;
  while (true) {
    const auto comma = line.find(',', start);
    cells.push_back(line.substr(start, comma - start));
    if (comma == std::string::npos) {
      return cells;
    }
    start = comma + 1;
  }
}

// Returns [N, D] float64.
torch::Tensor read_csv(const std::string& path) {
  std::ifstream in(path);
  std::vector<double> values;
  int64_t columns = -1;
  int64_t rows = 0;
  bool first_line = true;
  std::string line;
  for (int64_t line_number = 1; std::getline(in, line); ++line_number) {
    if (trim(line).empty()) {
      continue;
    }
    const auto cells = split_commas(line);
    std::vector<double> row;
    for (const auto& cell : cells) {
      const auto value = parse_number(trim(cell));
      if (!value) {
        // A number too large for a double is a bad value, not a header's name.
        if (out_of_double_range(trim(cell))) {
          throw ConfigError("data file '" + path + "', line " + std::to_string(line_number) +
                            ": cell '" + trim(cell) + "' is outside the range of a double");
        }
        if (first_line) {
          break;  // a header
        }
        throw ConfigError("data file '" + path + "', line " + std::to_string(line_number) +
                          ": cannot parse cell '" + trim(cell) + "' as a number");
      }
      row.push_back(*value);
    }
    const bool header = first_line && row.size() < cells.size();
    first_line = false;
    if (header) {
      continue;
    }
    if (columns < 0) {
      columns = static_cast<int64_t>(row.size());
    } else if (static_cast<int64_t>(row.size()) != columns) {
      throw ConfigError("data file '" + path + "', line " + std::to_string(line_number) + ": " +
                        std::to_string(row.size()) + " columns where earlier rows have " +
                        std::to_string(columns));
    }
    values.insert(values.end(), row.begin(), row.end());
    ++rows;
  }
  if (rows == 0) {
    throw ConfigError("data file '" + path + "' holds no data rows");
  }
  return torch::tensor(values, torch::kDouble).reshape({rows, columns});
}

torch::Tensor read_npy(const std::string& path) {
  auto array = load_npy(path);
  if (array.dim() == 1) {
    array = array.unsqueeze(1);
  }
  if (array.dim() != 2) {
    throw ConfigError("data file '" + path + "' must hold a 1-D or 2-D array, got shape " +
                      c10::str(array.sizes()));
  }
  if (array.numel() == 0) {
    throw ConfigError("data file '" + path + "' holds no points (shape " + c10::str(array.sizes()) +
                      ")");
  }
  return array;
}

}  // namespace

torch::Tensor load_points(const std::string& path) {
  std::string extension = std::filesystem::path(path).extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (extension != ".npy" && extension != ".csv") {
    throw ConfigError("data file '" + path + "' has an unsupported extension '" + extension +
                      "' (accepted: .npy, .csv)");
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec) || !std::ifstream(path)) {
    throw ConfigError("cannot read data file '" + path + "'");
  }
  // Checked after the cast so that float64 values beyond float32's range count as non-finite too.
  auto points =
      (extension == ".npy" ? read_npy(path) : read_csv(path)).to(torch::kFloat).contiguous();
  if (!torch::isfinite(points).all().item<bool>()) {
    throw ConfigError("data file '" + path + "' holds non-finite values (NaN or infinity)");
  }
  return points;
}

}  // namespace uotflow
