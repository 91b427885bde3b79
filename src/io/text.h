// Private to src/io: text rasterised for plots.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace uotflow::plot_detail {

/// Coverage of a line of text: alpha 0..255, row-major, `width` x `height` pixels, the baseline at
/// row `baseline`.
struct TextBitmap {
  int width = 0;
  int height = 0;
  int baseline = 0;
  std::vector<uint8_t> alpha;
};

/// `text` (ASCII; other bytes show as '?') rasterised at `pixel_height` (ascent + descent):
/// TrueType glyphs of DejaVu Sans through stb_truetype, or stb_easy_font's built-in strokes when no
/// font file can be read.
TextBitmap render_text(const std::string& text, double pixel_height);

/// The font file in use ($UOTFLOW_FONT, else the DejaVu Sans found at configure time), or "" when
/// the built-in strokes are used.
const std::string& font_file();

}  // namespace uotflow::plot_detail
