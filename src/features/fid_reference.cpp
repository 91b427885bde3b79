// `fid-ref`: feature statistics of a data set's images.
#include "uotflow/features/fid_reference.h"

#include <torch/torch.h>

#include <filesystem>
#include <ostream>

#include "uotflow/core/device.h"
#include "uotflow/core/error.h"
#include "uotflow/core/rng.h"
#include "uotflow/data/images.h"
#include "uotflow/features/features.h"

namespace uotflow {

Json make_fid_reference(const FidReferenceRequest& r, std::ostream* progress) {
  if (r.n < 0) {
    throw ConfigError("the number of images n must be >= 0, got " + std::to_string(r.n));
  }
  const auto device = parse_device(r.device);
  auto set = make_dataset(r.data_name, r.data_params);
  const auto* images = dynamic_cast<const ImageSet*>(set.get());
  if (images == nullptr) {
    throw ConfigError("data set '" + r.data_name + "' is not an image data set");
  }
  std::string extractor_path = r.extractor;
  if (r.extractor == "classifier") {
    extractor_path = std::filesystem::path(r.out).replace_extension(".classifier.safetensors");
    ClassifierOptions options;
    options.steps = r.classifier_steps;
    options.seed = derive_seed(r.seed, "classifier");
    const auto report = train_classifier(*images, options, extractor_path, progress);
    if (progress != nullptr) {
      *progress << "classifier held-out accuracy " << report.accuracy << ", written to "
                << extractor_path << "\n";
    }
  }
  TorchScriptInput input{r.input_range, r.input_channels};
  auto extractor = load_feature_extractor(extractor_path, images->image_shape(), device, input);
  auto x = images->images();
  if (r.n > 0 && r.n < x.size(0)) {
    auto gen = make_stream(r.seed, "fid-ref");
    x = x.index_select(0, torch::randperm(x.size(0), gen).slice(0, 0, r.n));
  }
  ReferenceStats stats;
  stats.gaussian = feature_statistics(extractor->features(x));
  stats.n = x.size(0);
  stats.extractor_sha256 = extractor->sha256();
  save_reference_stats(r.out, stats);
  return Json{{"out", r.out},
              {"n", stats.n},
              {"features", stats.gaussian.mean.numel()},
              {"extractor", extractor->kind()},
              {"extractor_path", extractor_path},
              {"extractor_sha256", stats.extractor_sha256}};
}

}  // namespace uotflow
