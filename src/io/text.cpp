// Text for plots: stb_truetype glyphs from a TrueType file read once, stb_easy_font as fallback.
#include "text.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <mutex>

#include "uotflow_build_info.h"

// Header-only stb, compiled here with internal linkage (see plot.cpp).
#define STBTT_STATIC
#define STB_TRUETYPE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_easy_font.h>
#include <stb/stb_truetype.h>
#pragma GCC diagnostic pop

namespace uotflow::plot_detail {
namespace {

struct Font {
  std::string path;
  std::string bytes;
  stbtt_fontinfo info{};
  bool ok = false;
};

const Font& font() {
  static const Font loaded = [] {
    Font f;
    const char* env = std::getenv("UOTFLOW_FONT");
    f.path = env != nullptr && *env != '\0' ? env : UOTFLOW_FONT_FILE;
    if (!f.path.empty()) {
      std::ifstream in(f.path, std::ios::binary);
      f.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      const auto* data = reinterpret_cast<const unsigned char*>(f.bytes.data());
      f.ok = !f.bytes.empty() && stbtt_GetFontOffsetForIndex(data, 0) >= 0 &&
             stbtt_InitFont(&f.info, data, stbtt_GetFontOffsetForIndex(data, 0)) != 0;
    }
    if (!f.ok) {
      f.path.clear();
    }
    return f;
  }();
  return loaded;
}

std::string printable(const std::string& text) {
  std::string out = text;
  for (char& c : out) {
    if (c < 32 || c > 126) {
      c = '?';
    }
  }
  return out;
}

TextBitmap render_truetype(const Font& f, const std::string& text, double pixel_height) {
  const float scale = stbtt_ScaleForPixelHeight(&f.info, static_cast<float>(pixel_height));
  int ascent = 0, descent = 0, gap = 0;
  stbtt_GetFontVMetrics(&f.info, &ascent, &descent, &gap);
  TextBitmap out;
  out.baseline = static_cast<int>(std::ceil(ascent * scale));
  out.height = out.baseline + static_cast<int>(std::ceil(-descent * scale)) + 1;
  // Pen positions first (advance + kerning), so the bitmap is allocated once.
  std::vector<float> pen(text.size() + 1, 0.0f);
  for (size_t i = 0; i < text.size(); ++i) {
    int advance = 0, lsb = 0;
    stbtt_GetCodepointHMetrics(&f.info, text[i], &advance, &lsb);
    const int kern =
        i + 1 < text.size() ? stbtt_GetCodepointKernAdvance(&f.info, text[i], text[i + 1]) : 0;
    pen[i + 1] = pen[i] + (advance + kern) * scale;
  }
  out.width = static_cast<int>(std::ceil(pen.back())) + 2;
  out.alpha.assign(static_cast<size_t>(out.width) * out.height, 0);
  std::vector<uint8_t> glyph;
  for (size_t i = 0; i < text.size(); ++i) {
    int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    const float shift = pen[i] - std::floor(pen[i]);
    stbtt_GetCodepointBitmapBoxSubpixel(&f.info, text[i], scale, scale, shift, 0, &x0, &y0, &x1,
                                        &y1);
    const int w = x1 - x0, h = y1 - y0;
    if (w <= 0 || h <= 0) {
      continue;  // a space
    }
    glyph.assign(static_cast<size_t>(w) * h, 0);
    stbtt_MakeCodepointBitmapSubpixel(&f.info, glyph.data(), w, h, w, scale, scale, shift, 0,
                                      text[i]);
    const int left = static_cast<int>(std::floor(pen[i])) + x0;
    const int top = out.baseline + y0;
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        const int tx = left + x, ty = top + y;
        if (tx >= 0 && ty >= 0 && tx < out.width && ty < out.height) {
          auto& a = out.alpha[static_cast<size_t>(ty) * out.width + tx];
          a = std::max(a, glyph[static_cast<size_t>(y) * w + x]);  // overlapping glyphs: no gaps
        }
      }
    }
  }
  return out;
}

// stb_easy_font draws 7-pixel-high capitals from quads; they are scaled to the asked height.
TextBitmap render_strokes(const std::string& text, double pixel_height) {
  const double scale = std::max(1.0, pixel_height / 10.0);
  std::string mutable_text = text;
  std::vector<char> buffer(mutable_text.size() * 270 + 64);
  const int quads = stb_easy_font_print(0, 0, mutable_text.data(), nullptr, buffer.data(),
                                        static_cast<int>(buffer.size()));
  TextBitmap out;
  out.width = static_cast<int>(std::ceil(stb_easy_font_width(mutable_text.data()) * scale)) + 2;
  out.height = static_cast<int>(std::ceil(10 * scale));
  out.baseline = static_cast<int>(std::ceil(7 * scale));
  out.alpha.assign(static_cast<size_t>(out.width) * out.height, 0);
  const auto* vertices = reinterpret_cast<const float*>(buffer.data());
  for (int q = 0; q < quads; ++q) {
    const float* v = vertices + 16 * q;  // 4 vertices of x, y, z, colour
    const int x0 = static_cast<int>(std::lround(v[0] * scale));
    const int y0 = static_cast<int>(std::lround(v[1] * scale));
    const int x1 = static_cast<int>(std::lround(v[8] * scale));
    const int y1 = static_cast<int>(std::lround(v[9] * scale));
    for (int y = std::max(0, y0); y < std::min(out.height, y1); ++y) {
      for (int x = std::max(0, x0); x < std::min(out.width, x1); ++x) {
        out.alpha[static_cast<size_t>(y) * out.width + x] = 255;
      }
    }
  }
  return out;
}

}  // namespace

TextBitmap render_text(const std::string& text, double pixel_height) {
  const auto clean = printable(text);
  const Font& f = font();
  static std::mutex mutex;  // stb_truetype's font info is read-only, but be safe across threads
  std::lock_guard<std::mutex> lock(mutex);
  return f.ok ? render_truetype(f, clean, pixel_height) : render_strokes(clean, pixel_height);
}

const std::string& font_file() {
  return font().path;
}

}  // namespace uotflow::plot_detail
