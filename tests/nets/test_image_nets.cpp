// Image nets: shapes on 28x28x1 and 32x32x3, batch independence of the generators, the roles of x
// and z, adaptive group norm, double backward of the potentials, minibatch stddev, FIR resampling,
// shape inference, config errors and a finite-difference check of NCSN++.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "checks.h"
#include "uotflow/core/error.h"
#include "uotflow/nets/image_nets.h"

using namespace uotflow;
using uotflow::testing::expect_config_error;
using uotflow::testing::relative_error;

namespace {

class ImageNetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(11);
    add_image_generators(generators_);
    add_image_potentials(potentials_);
  }

  std::shared_ptr<GeneratorNet> generator(const std::string& net, int64_t dim, Json section = {}) {
    section["net"] = net;
    return generators_.create(net, dim, section);
  }
  std::shared_ptr<PotentialNet> potential(const std::string& net, int64_t dim, Json section = {}) {
    section["net"] = net;
    return potentials_.create(net, dim, section);
  }

  GeneratorRegistry generators_{"generator network"};
  PotentialRegistry potentials_{"potential network"};
};

// Tiny sections of every image net.
Json tiny_section(const std::string& net) {
  if (net == "ncsnpp") {
    return Json{{"nf", 8}, {"ch_mult", {1, 2}}, {"num_res_blocks", 1}, {"attn_resolutions", {16}},
                {"nz", 4}, {"z_emb_dim", 8},    {"n_mlp", 1}};
  }
  if (net == "small_conv") {
    return Json{{"nf", 4}, {"ch_mult", {1, 2, 2}}};
  }
  return Json{{"width", 8}, {"nz", 4}};
}

// Random weights everywhere, so that the layers the references start at ~0 take part.
void randomize(torch::nn::Module& net, double std = 0.2) {
  torch::NoGradGuard no_grad;
  for (auto& p : net.parameters()) {
    p.normal_(0.0, std);
  }
}

double max_abs(const torch::Tensor& t) {
  return t.abs().max().item<double>();
}

const std::vector<std::vector<int64_t>> kShapes = {{1, 28, 28}, {3, 32, 32}};

TEST_F(ImageNetTest, ImageNetShapesFlatInFlatOut) {
  for (const auto& shape : kShapes) {
    const int64_t dim = shape[0] * shape[1] * shape[2];
    for (const std::string net : {"dcgan", "ncsnpp"}) {
      auto g = generator(net, dim, tiny_section(net));
      auto y = g->forward(torch::randn({3, dim}), torch::randn({3, g->latent_dim()}));
      EXPECT_EQ(y.sizes(), (std::vector<int64_t>{3, dim})) << net << " dim " << dim;
    }
    for (const std::string net : {"dcgan", "small_conv"}) {
      auto v = potential(net, dim, tiny_section(net));
      EXPECT_EQ(v->forward(torch::randn({4, dim})).sizes(), (std::vector<int64_t>{4}))
          << net << " dim " << dim;
    }
  }
}

TEST_F(ImageNetTest, ImageNetDcganGeneratorOutputsLieInMinusOneOne) {
  auto g = generator("dcgan", 3072, tiny_section("dcgan"));
  randomize(*g, 1.0);
  auto y = g->forward(3 * torch::randn({4, 3072}), 3 * torch::randn({4, 4}));
  EXPECT_LE(max_abs(y), 1.0);
  EXPECT_GT(max_abs(y), 0.5) << "tanh saturates with such weights";
}

// The autoencoder's nets: images <-> codes of nz numbers, decoded images in [-1, 1], each sample
// independent of the others in its batch (GroupNorm, no batch statistics); a clone is an equal,
// separate copy (what a flow freezes as rho_k).
TEST_F(ImageNetTest, DcganEncoderAndDecoderMapImagesAndCodes) {
  for (const auto& shape : kShapes) {
    const int64_t dim = shape[0] * shape[1] * shape[2];
    DcganEncoder encoder(DcganOptions(shape).width(8).nz(6));
    DcganDecoder decoder(DcganOptions(shape).width(8).nz(6));
    randomize(*decoder, 1.0);
    const auto x = torch::randn({5, dim});
    const auto z = encoder->forward(x);
    EXPECT_EQ(z.sizes(), (std::vector<int64_t>{5, 6}));
    const auto y = decoder->forward(3 * torch::randn({5, 6}));
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{5, dim}));
    EXPECT_LE(max_abs(y), 1.0);
    EXPECT_LT(max_abs(encoder->forward(x.slice(0, 0, 1)) - z.slice(0, 0, 1)),
              1e-5 * (1 + max_abs(z)));
    auto copy = std::dynamic_pointer_cast<DcganDecoderImpl>(decoder->clone());
    const auto code = torch::randn({2, 6});
    EXPECT_TRUE(torch::allclose(copy->forward(code), decoder->forward(code)));
    {
      torch::NoGradGuard no_grad;
      copy->parameters()[0].add_(1.0);
    }
    EXPECT_FALSE(torch::allclose(copy->forward(code), decoder->forward(code)));
  }
  EXPECT_THROW(DcganDecoder(DcganOptions({1, 28, 28}).nz(0)), ConfigError);
}

TEST_F(ImageNetTest, ImageNetGeneratorsAreBatchIndependent) {
  for (const auto& shape : kShapes) {
    const int64_t dim = shape[0] * shape[1] * shape[2];
    for (const std::string net : {"dcgan", "ncsnpp"}) {
      auto g = generator(net, dim, tiny_section(net));
      randomize(*g, 0.1);
      auto x = torch::randn({5, dim});
      auto z = torch::randn({5, g->latent_dim()});
      auto batch = g->forward(x, z);
      auto alone = g->forward(x.slice(0, 0, 1), z.slice(0, 0, 1));
      EXPECT_LT(max_abs(batch.slice(0, 0, 1) - alone), 1e-5 * (1 + max_abs(alone)))
          << net << " dim " << dim;
    }
  }
}

TEST_F(ImageNetTest, ImageNetGeneratorsDependOnXAndZ) {
  for (const std::string net : {"dcgan", "ncsnpp"}) {
    auto g = generator(net, 784, tiny_section(net));
    randomize(*g, 0.1);
    auto x = torch::randn({2, 784});
    auto z = torch::randn({2, g->latent_dim()});
    auto y = g->forward(x, z);
    EXPECT_GT(max_abs(g->forward(x, torch::randn_like(z)) - y), 1e-3) << net << ": z ignored";
    EXPECT_GT(max_abs(g->forward(torch::randn_like(x), z) - y), 1e-3) << net << ": x ignored";
  }
}

TEST_F(ImageNetTest, ImageNetNcsnppStartsNearZero) {
  // The output conv starts at scale 1e-10 (the reference's init_scale 0).
  auto g = generator("ncsnpp", 3072, tiny_section("ncsnpp"));
  auto y = g->forward(torch::randn({2, 3072}), torch::randn({2, 4}));
  EXPECT_LT(max_abs(y), 1e-3);
  EXPECT_GT(max_abs(y), 0.0);
}

TEST_F(ImageNetTest, ImageNetAdaptiveGroupNormScalesAndShiftsFromW) {
  AdaptiveGroupNorm norm(16, 6);
  auto h = torch::randn({3, 16, 5, 5});
  auto plain = torch::group_norm(h, 4, {}, {}, 1e-6);
  // The style bias starts at zero: w = 0 is a plain GroupNorm.
  EXPECT_LT(max_abs(norm->forward(h, torch::zeros({3, 6})) - plain), 1e-6);
  auto w = torch::randn({3, 6});
  auto style = torch::matmul(w, norm->style->weight.t()) + norm->style->bias;  // [3, 32]
  auto gamma = style.slice(1, 0, 16).view({3, 16, 1, 1});
  auto beta = style.slice(1, 16, 32).view({3, 16, 1, 1});
  auto out = norm->forward(h, w);
  EXPECT_LT(max_abs(out - (plain * (1 + gamma) + beta)), 1e-5);
  EXPECT_GT(max_abs(norm->forward(h, torch::randn({3, 6})) - out), 1e-2) << "w changes the scale";
}

TEST_F(ImageNetTest, ImageNetPotentialsSupportDoubleBackward) {
  for (const std::string net : {"dcgan", "small_conv"}) {
    auto v = potential(net, 3072, tiny_section(net));
    auto y = torch::randn({4, 3072}).requires_grad_(true);
    auto grad = torch::autograd::grad({v->forward(y).sum()}, {y}, {}, true, true)[0];
    auto r1 = grad.pow(2).sum();
    r1.backward();
    double total = 0.0;
    for (const auto& p : v->parameters()) {
      if (p.grad().defined()) {
        EXPECT_TRUE(torch::isfinite(p.grad()).all().item<bool>()) << net;
        total += p.grad().abs().sum().item<double>();
      }
    }
    EXPECT_GT(total, 0.0) << net;
    const auto first = v->parameters().front();  // the first conv, reached only by double backward
    ASSERT_TRUE(first.grad().defined()) << net;
    EXPECT_GT(max_abs(first.grad()), 0.0) << net;
  }
}

TEST_F(ImageNetTest, ImageNetMinibatchStddevMatchesADirectComputation) {
  auto same = torch::randn({1, 3, 4, 4}).expand({8, 3, 4, 4}).contiguous();
  auto out = minibatch_stddev(same, 4);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{8, 4, 4, 4}));
  EXPECT_TRUE(torch::equal(out.slice(1, 0, 3), same));
  EXPECT_LT(max_abs(out.select(1, 3) - 1e-4), 1e-9) << "identical images: sqrt(0 + 1e-8)";

  // B = 6, group 4 -> groups of 3 samples {b, b + 2, b + 4}.
  auto x = torch::randn({6, 2, 3, 3}, torch::kDouble);
  auto channel = minibatch_stddev(x, 4).select(1, 2);  // [6, 3, 3]
  for (int64_t b = 0; b < 6; ++b) {
    auto members = torch::stack({x[b % 2], x[b % 2 + 2], x[b % 2 + 4]});
    auto expected = torch::sqrt(members.var(0, false) + 1e-8).mean().item<double>();
    EXPECT_LT(max_abs(channel[b] - expected), 1e-12) << "sample " << b;
  }
  EXPECT_EQ(minibatch_stddev(torch::randn({5, 2, 3, 3}), 4).size(1), 3) << "prime batch: group 1";
}

TEST_F(ImageNetTest, ImageNetFirResamplingKeepsConstantsInTheInterior) {
  auto ones = torch::ones({1, 2, 8, 8}, torch::kDouble);
  auto down = fir_downsample(ones);
  auto up = fir_upsample(ones);
  ASSERT_EQ(down.sizes(), (std::vector<int64_t>{1, 2, 4, 4}));
  ASSERT_EQ(up.sizes(), (std::vector<int64_t>{1, 2, 16, 16}));
  EXPECT_LT(max_abs(down.slice(2, 1, 3).slice(3, 1, 3) - 1), 1e-12);
  EXPECT_LT(max_abs(up.slice(2, 2, 14).slice(3, 2, 14) - 1), 1e-12);
}

TEST_F(ImageNetTest, ImageNetInferImageShape) {
  EXPECT_EQ(infer_image_shape(784, Json::object()), (std::vector<int64_t>{1, 28, 28}));
  EXPECT_EQ(infer_image_shape(3072, Json::object()), (std::vector<int64_t>{3, 32, 32}));
  EXPECT_EQ(infer_image_shape(96, Json{{"image_shape", {3, 8, 4}}}),
            (std::vector<int64_t>{3, 8, 4}));
  expect_config_error(
      [] {
        infer_image_shape(10, Json{{"net", "dcgan"}});
      },
      "dim 10", "image_shape");
  expect_config_error(
      [] {
        infer_image_shape(100, Json{{"image_shape", {3, 8, 4}}});
      },
      "product != dim", "image_shape");
  expect_config_error(
      [] {
        infer_image_shape(64, Json{{"image_shape", {8, 8}}});
      },
      "two entries", "image_shape");
}

TEST_F(ImageNetTest, ImageNetConfigErrors) {
  auto section = tiny_section("ncsnpp");
  section["resblock"] = "ddpm";
  expect_config_error([&] { generator("ncsnpp", 784, section); }, "resblock ddpm", "resblock");
  for (const Json& bad : {Json::array(), Json{2, 0}}) {
    auto s = tiny_section("ncsnpp");
    s["ch_mult"] = bad;
    expect_config_error([&] { generator("ncsnpp", 784, s); }, "ncsnpp ch_mult", "ch_mult");
    auto p = tiny_section("small_conv");
    p["ch_mult"] = bad;
    expect_config_error([&] { potential("small_conv", 784, p); }, "small_conv ch_mult", "ch_mult");
  }
  expect_config_error(
      [&] {
        generator("dcgan", 784, Json{{"width", 14}});
      },
      "dcgan width 14", "width");
  expect_config_error([&] { generator("ncsnpp", 784, Json{{"nf", 14}}); }, "ncsnpp nf 14", "nf");
  expect_config_error([&] { generator("ncsnpp", 784, Json{{"nz", 0}}); }, "ncsnpp nz 0", "nz");
  expect_config_error(
      [&] {
        generator("dcgan", 784, Json{{"width", "wide"}});
      },
      "width string", "width");
}

TEST_F(ImageNetTest, ImageNetAttentionAt16AddsParameters) {
  auto with = tiny_section("ncsnpp");
  with["attn_resolutions"] = {16};
  auto without = tiny_section("ncsnpp");
  without["attn_resolutions"] = Json::array();
  const int64_t n_with = count_parameters(*generator("ncsnpp", 3072, with));
  const int64_t n_without = count_parameters(*generator("ncsnpp", 3072, without));
  // Level 1 (16x16, 16 channels): one attention after its down block and one on the way up, each
  // GroupNorm 2 * 16 + four 1x1 convs 4 * (16 * 16 + 16).
  EXPECT_EQ(n_with - n_without, 2 * (2 * 16 + 4 * (16 * 16 + 16)));
}

TEST_F(ImageNetTest, ImageNetNcsnppGradientMatchesFiniteDifferences) {
  Json section{{"nf", 8}, {"ch_mult", {1, 2}}, {"num_res_blocks", 1}, {"attn_resolutions", {4}},
               {"nz", 3}, {"z_emb_dim", 8},    {"n_mlp", 1}};
  auto g = generator("ncsnpp", 64, section);  // 1 x 8 x 8
  randomize(*g, 0.3);
  g->to(torch::kDouble);
  auto x = torch::randn({2, 64}, torch::kDouble);
  auto z = torch::randn({2, 3}, torch::kDouble);
  auto r = torch::randn({2, 64}, torch::kDouble);
  auto loss = [&] { return (g->forward(x, z) * r).sum(); };
  g->zero_grad();
  loss().backward();
  torch::NoGradGuard no_grad;
  const auto named = g->named_parameters();
  int checked = 0;
  for (size_t i = 0; i < named.size(); i += 5) {
    auto p = named[i].value();
    auto flat = p.view(-1);
    const int64_t k = flat.numel() / 2;
    const double analytic = p.grad().view(-1)[k].item<double>();
    const double h = 1e-4, saved = flat[k].item<double>();
    flat[k] = saved + h;
    const double up = loss().item<double>();
    flat[k] = saved - h;
    const double down = loss().item<double>();
    flat[k] = saved;
    const double numeric = (up - down) / (2 * h);
    if (std::abs(numeric) > 1e-6) {
      EXPECT_LT(relative_error(analytic, numeric), 1e-4) << named[i].key();
      ++checked;
    }
  }
  EXPECT_GT(checked, 10);
}

}  // namespace
