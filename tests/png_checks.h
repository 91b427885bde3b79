// Reading PNGs back in tests: size from the header, pixels through stb_image, and pixel tests.
#pragma once

#include <gtest/gtest.h>

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace uotflow::testing {

// Width and height from the IHDR chunk, which must directly follow the 8-byte signature.
inline std::pair<int, int> png_size(const std::string& bytes) {
  EXPECT_GE(bytes.size(), 24u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(bytes.substr(12, 4), "IHDR");
  auto be32 = [&](size_t at) {
    int v = 0;
    for (size_t i = 0; i < 4; ++i) {
      v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
    }
    return v;
  };
  return {be32(16), be32(20)};
}

struct Image {
  int width = 0, height = 0;
  std::vector<unsigned char> rgb;
  const unsigned char* at(int x, int y) const {
    return &rgb[3 * (y * width + x)];
  }
};

inline Image decode_png(const std::string& bytes) {
  Image image;
  int channels = 0;
  unsigned char* pixels = stbi_load_from_memory(
      reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()),
      &image.width, &image.height, &channels, 3);
  EXPECT_NE(pixels, nullptr) << "PNG does not decode";
  if (pixels != nullptr) {
    image.rgb.assign(pixels, pixels + 3 * image.width * image.height);
    stbi_image_free(pixels);
  }
  return image;
}

// Dark (text-coloured) pixels in a box of the picture.
inline int dark_pixels(const Image& image, int x0, int y0, int x1, int y1) {
  int n = 0;
  for (int y = std::max(0, y0); y <= std::min(image.height - 1, y1); ++y) {
    for (int x = std::max(0, x0); x <= std::min(image.width - 1, x1); ++x) {
      const unsigned char* px = image.at(x, y);
      n += px[0] < 140 && px[1] < 140 && px[2] < 140;
    }
  }
  return n;
}

inline bool is_colour(const unsigned char* px, int r, int g, int b) {
  return std::abs(px[0] - r) < 40 && std::abs(px[1] - g) < 40 && std::abs(px[2] - b) < 40;
}

}  // namespace uotflow::testing
