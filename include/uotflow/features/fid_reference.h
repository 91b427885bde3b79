// Reference feature statistics of an image data set for later FIDs (`uotflow fid-ref`).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "uotflow/core/config.h"

namespace uotflow {

/// What to compute the statistics of, and with which extractor.
struct FidReferenceRequest {
  std::string data_name;  ///< an image data set of the registry
  Json data_params = Json::object();
  std::string extractor = "classifier";  ///< TorchScript .pt, a classifier .safetensors, or
                                         ///< "classifier": train the built-in one beside `out`
  std::string out;                       ///< .npz to write
  int64_t n = 0;                         ///< images used (0 = all, else a random subset)
  uint64_t seed = 0;                     ///< of the subset and the classifier
  int64_t classifier_steps = 2000;
  std::string input_range = "signed";  ///< TorchScript input scaling: signed, unit, byte
  int64_t input_channels = 0;          ///< 0 as is, 3 repeats grey images
  std::string device = "cpu";
};

/// Writes request.out and returns a report {out, n, features, extractor, extractor_path,
/// extractor_sha256}; progress lines of a classifier's training go to `progress` (may be null).
Json make_fid_reference(const FidReferenceRequest& request, std::ostream* progress);

}  // namespace uotflow
