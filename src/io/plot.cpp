// PNG plots drawn by hand on an RGB canvas (scatter, histogram, line plot) and encoded with
// stb_image_write.
#include "uotflow/io/plot.h"

#include "text.h"
#include "uotflow/io/files.h"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

// Header-only use of stb: the implementation is compiled here with internal linkage, so no library
// is linked and no symbol can clash with another translation unit that does the same.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace uotflow {

namespace {

std::string encode_png(const uint8_t* pixels, int width, int height, int channels) {
  std::string png;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), size);
  };
  const int ok =
      stbi_write_png_to_func(append, &png, width, height, channels, pixels, channels * width);
  TORCH_CHECK(ok != 0, "cannot encode a ", width, "x", height, " PNG");
  return png;
}

// Encoding to memory and writing through write_file_atomic means a reader never sees half a PNG.
void write_png(const std::string& path, const uint8_t* pixels, int width, int height,
               int channels) {
  write_file_atomic(path, encode_png(pixels, width, height, channels));
}

using Rgb = std::array<uint8_t, 3>;

constexpr Rgb kFrame = {190, 190, 190};
constexpr Rgb kAxis = {228, 228, 228};
constexpr Rgb kData = {90, 90, 90};
constexpr Rgb kDataBar = {185, 185, 185};
constexpr Rgb kBlue = {31, 119, 180};
constexpr Rgb kOrange = {255, 127, 14};
constexpr Rgb kArrow = {170, 170, 170};
constexpr Rgb kText = {40, 40, 40};
constexpr double kCaptionText = 11.0;
constexpr double kTickText = 12.0;
constexpr double kLabelText = 13.0;
constexpr double kTitleText = 14.0;

// %g with `digits` significant digits: 0.001, 0.25, 2000, 1e+05.
std::string format_tick(double v, int digits = 4) {
  if (std::abs(v) < 1e-300) {
    return "0";
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.*g", digits, v);
  return buf;
}
constexpr Rgb kGrid = {235, 235, 235};
// matplotlib's tab10 order, so line colours look familiar.
constexpr Rgb kPalette[] = {{31, 119, 180},  {255, 127, 14}, {44, 160, 44},   {214, 39, 40},
                            {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {127, 127, 127},
                            {188, 189, 34},  {23, 190, 207}};

class Canvas {
 public:
  Canvas(int width, int height) : width_(width), height_(height), rgb_(3 * width * height, 255) {}

  int width() const {
    return width_;
  }
  int height() const {
    return height_;
  }

  // Blends `colour` over pixel (x, y) with opacity `alpha`; repeated dots darken dense regions.
  void blend(int x, int y, const Rgb& colour, double alpha = 1.0) {
    if (x < 0 || y < 0 || x >= width_ || y >= height_) {
      return;
    }
    uint8_t* px = &rgb_[3 * (static_cast<size_t>(y) * width_ + x)];
    for (int c = 0; c < 3; ++c) {
      px[c] = static_cast<uint8_t>(std::lround(px[c] * (1.0 - alpha) + colour[c] * alpha));
    }
  }

  void fill_rect(int x0, int y0, int x1, int y1, const Rgb& colour, double alpha = 1.0) {
    for (int y = std::max(0, y0); y <= std::min(height_ - 1, y1); ++y) {
      for (int x = std::max(0, x0); x <= std::min(width_ - 1, x1); ++x) {
        blend(x, y, colour, alpha);
      }
    }
  }

  void hline(int x0, int x1, int y, const Rgb& colour) {
    fill_rect(x0, y, x1, y, colour);
  }
  void vline(int x, int y0, int y1, const Rgb& colour) {
    fill_rect(x, y0, x, y1, colour);
  }

  void frame(int x0, int y0, int x1, int y1, const Rgb& colour) {
    hline(x0, x1, y0, colour);
    hline(x0, x1, y1, colour);
    vline(x0, y0, y1, colour);
    vline(x1, y0, y1, colour);
  }

  // A filled disc centred at the sub-pixel position (cx, cy).
  void dot(double cx, double cy, double radius, const Rgb& colour, double alpha) {
    const int r = static_cast<int>(std::ceil(radius));
    const int ix = static_cast<int>(std::lround(cx));
    const int iy = static_cast<int>(std::lround(cy));
    for (int y = iy - r; y <= iy + r; ++y) {
      for (int x = ix - r; x <= ix + r; ++x) {
        if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= radius * radius) {
          blend(x, y, colour, alpha);
        }
      }
    }
  }

  // A line of about `width` pixels: discs stamped every half pixel, drawn opaque so overlaps do not
  // show.
  void line(double x0, double y0, double x1, double y1, double width, const Rgb& colour) {
    const int steps =
        std::max(1, static_cast<int>(2.0 * std::max(std::abs(x1 - x0), std::abs(y1 - y0))));
    for (int i = 0; i <= steps; ++i) {
      const double t = static_cast<double>(i) / steps;
      dot(x0 + t * (x1 - x0), y0 + t * (y1 - y0), width / 2.0, colour, 1.0);
    }
  }

  // Text with its anchor at (x, y): h_align -1 left, 0 centre, 1 right of x; v_align -1 top,
  // 0 middle, 1 bottom at y. `vertical` turns it 90 degrees counter-clockwise (read bottom-up).
  // Returns the box drawn {left, top, right, bottom}.
  std::array<int, 4> text(double x, double y, const std::string& str, double size,
                          const Rgb& colour, int h_align = -1, int v_align = -1,
                          bool vertical = false) {
    const auto bitmap = plot_detail::render_text(str, size);
    const int w = vertical ? bitmap.height : bitmap.width;
    const int h = vertical ? bitmap.width : bitmap.height;
    const int left = static_cast<int>(std::lround(x - (h_align + 1) * w / 2.0));
    const int top = static_cast<int>(std::lround(y - (v_align + 1) * h / 2.0));
    for (int r = 0; r < bitmap.height; ++r) {
      for (int c = 0; c < bitmap.width; ++c) {
        const uint8_t a = bitmap.alpha[static_cast<size_t>(r) * bitmap.width + c];
        if (a > 0) {
          const int px = vertical ? left + r : left + c;
          const int py = vertical ? top + (bitmap.width - 1 - c) : top + r;
          blend(px, py, colour, a / 255.0);
        }
      }
    }
    return {left, top, left + w - 1, top + h - 1};
  }

  void save_png(const std::string& path) const {
    write_png(path, rgb_.data(), width_, height_, 3);
  }
  std::string png() const {
    return encode_png(rgb_.data(), width_, height_, 3);
  }

 private:
  int width_;
  int height_;
  std::vector<uint8_t> rgb_;
};

// points: any float dtype, any device; returns a CPU float32 [N, cols] (N = 0 when undefined or
// empty).
torch::Tensor to_cpu_points(const torch::Tensor& points, int64_t cols, const char* what) {
  if (!points.defined() || points.numel() == 0) {
    return torch::zeros({0, cols}, torch::kFloat32);
  }
  torch::Tensor out = points.detach().to(torch::kCPU, torch::kFloat32);
  if (cols == 1 && out.dim() == 1) {
    out = out.unsqueeze(1);
  }
  TORCH_CHECK(out.dim() == 2 && out.size(1) == cols, what, " must have shape [N, ", cols, "]",
              cols == 1 ? " or [N]" : "", ", got ", points.sizes());
  return out.contiguous();
}

}  // namespace

namespace {

// "x, y in [-4.5, 4.5]", or the two ranges when the window is not centred at the origin.
std::string window_range(const PlotWindow& w) {
  auto range = [&](double c) {
    return "[" + format_tick(c - w.radius, 3) + ", " + format_tick(c + w.radius, 3) + "]";
  };
  if (w.centre_x == w.centre_y) {
    return "x, y in " + range(w.centre_x);
  }
  return "x in " + range(w.centre_x) + ", y in " + range(w.centre_y);
}

// Small text on a translucent white box (readable over points); v_align as Canvas::text.
void caption(Canvas& canvas, int x, int y, const std::string& text, int v_align) {
  if (text.empty()) {
    return;
  }
  const auto bitmap = plot_detail::render_text(text, kCaptionText);
  const int top = v_align < 0 ? y : y - bitmap.height + 1;
  canvas.fill_rect(x - 2, top, x + bitmap.width, top + bitmap.height - 1, {255, 255, 255}, 0.8);
  canvas.text(x, top, text, kCaptionText, kText, -1, -1);
}

// Where a map's inputs are drawn (orange) and how many lines join inputs to their images.
struct MapInputs {
  torch::Tensor points;
  int64_t arrows = 0;
};

// One scatter panel of size_px x size_px with its left edge at x0: data (grey), the map's inputs
// and their lines when given, then samples (blue), the window's range and `label` as captions.
void draw_scatter_panel(Canvas& canvas, int x0, int size_px, const torch::Tensor& data,
                        const torch::Tensor& samples, const PlotWindow& window,
                        const std::string& label = "", const MapInputs& inputs = {}) {
  const int last = size_px - 1;
  canvas.hline(x0, x0 + last, last / 2, kAxis);
  canvas.vline(x0 + last / 2, 0, last, kAxis);
  canvas.frame(x0, 0, x0 + last, last, kFrame);

  // Dots grow with the picture so a 1024 px snapshot looks like a 512 px one, only sharper.
  const double radius = std::max(1.0, 1.5 * size_px / 512.0);
  const double scale = last / (2.0 * window.radius);
  // Pixel position of a point, or false when it lies outside the window (or is NaN).
  auto pixel = [&](float x, float y, double& px, double& py) {
    const double dx = x - window.centre_x;
    const double dy = y - window.centre_y;
    if (!(std::abs(dx) <= window.radius && std::abs(dy) <= window.radius)) {
      return false;
    }
    px = x0 + last / 2.0 + dx * scale;
    py = last / 2.0 - dy * scale;  // image rows grow downwards, so y is flipped
    return true;
  };
  auto draw = [&](const torch::Tensor& points, const Rgb& colour, double alpha) {
    auto acc = points.accessor<float, 2>();
    for (int64_t i = 0; i < acc.size(0); ++i) {
      double px = 0, py = 0;
      if (pixel(acc[i][0], acc[i][1], px, py)) {
        canvas.dot(px, py, radius, colour, alpha);
      }
    }
  };
  draw(to_cpu_points(data, 2, "data"), kData, 0.25);
  if (inputs.points.defined()) {
    const auto from = to_cpu_points(inputs.points, 2, "inputs");
    const auto to = to_cpu_points(samples, 2, "samples");
    TORCH_CHECK(from.size(0) == to.size(0), "transport plot: ", from.size(0), " inputs for ",
                to.size(0), " samples");
    auto a = from.accessor<float, 2>();
    auto b = to.accessor<float, 2>();
    for (int64_t i = 0; i < std::min(inputs.arrows, a.size(0)); ++i) {
      double ax = 0, ay = 0, bx = 0, by = 0;
      if (pixel(a[i][0], a[i][1], ax, ay) && pixel(b[i][0], b[i][1], bx, by)) {
        canvas.line(ax, ay, bx, by, std::max(1.0, size_px / 512.0), kArrow);
      }
    }
    draw(from, kOrange, 0.5);
  }
  draw(to_cpu_points(samples, 2, "samples"), kBlue, 0.6);
  if (size_px >= 96) {  // the window's range bottom left, the panel's label top left
    caption(canvas, x0 + 4, last - 3, window_range(window), 1);
    caption(canvas, x0 + 4, 3, label, -1);
  }
}

void check_scatter_args(int size_px, const PlotWindow& window) {
  TORCH_CHECK(size_px >= 16, "scatter plot: size_px must be at least 16, got ", size_px);
  TORCH_CHECK(window.radius > 0, "scatter plot: window radius must be positive, got ",
              window.radius);
}

}  // namespace

void save_scatter_png(const std::string& path, const torch::Tensor& data,
                      const torch::Tensor& samples, const PlotWindow& window, int size_px) {
  check_scatter_args(size_px, window);
  Canvas canvas(size_px, size_px);
  draw_scatter_panel(canvas, 0, size_px, data, samples, window);
  canvas.save_png(path);
}

void save_transport_png(const std::string& path, const torch::Tensor& data,
                        const torch::Tensor& inputs, const torch::Tensor& outputs,
                        const PlotWindow& window, int64_t arrows, int size_px) {
  check_scatter_args(size_px, window);
  Canvas canvas(size_px, size_px);
  draw_scatter_panel(canvas, 0, size_px, data, outputs, window, "", MapInputs{inputs, arrows});
  canvas.save_png(path);
}

void save_scatter_strip_png(const std::string& path, const torch::Tensor& data,
                            const std::vector<torch::Tensor>& panels, const PlotWindow& window,
                            int panel_px, const std::vector<std::string>& labels) {
  check_scatter_args(panel_px, window);
  TORCH_CHECK(!panels.empty(), "save_scatter_strip_png: no panels");
  TORCH_CHECK(labels.empty() || labels.size() == panels.size(),
              "save_scatter_strip_png: ", labels.size(), " labels for ", panels.size(), " panels");
  const int gap = 4;
  const int count = static_cast<int>(panels.size());
  Canvas canvas(count * panel_px + (count - 1) * gap, panel_px);
  for (int i = 0; i < count; ++i) {
    draw_scatter_panel(canvas, i * (panel_px + gap), panel_px, data, panels[i], window,
                       labels.empty() ? "" : labels[i]);
  }
  canvas.save_png(path);
}

void save_histogram_png(const std::string& path, const torch::Tensor& data,
                        const torch::Tensor& samples, const PlotWindow& window, int bins,
                        int width_px, int height_px) {
  TORCH_CHECK(bins >= 1, "save_histogram_png: bins must be positive, got ", bins);
  TORCH_CHECK(width_px >= 16 && height_px >= 16,
              "save_histogram_png: picture too small: ", width_px, "x", height_px);
  TORCH_CHECK(window.radius > 0, "save_histogram_png: window radius must be positive, got ",
              window.radius);
  const double lo = window.centre_x - window.radius;
  const double bin_width = 2.0 * window.radius / bins;

  // Densities are normalised by all finite values, so mass outside the window shows up as missing
  // area.
  auto density = [&](const torch::Tensor& points) {
    std::vector<double> hist(bins, 0.0);
    auto acc = points.accessor<float, 2>();
    int64_t n = 0;
    for (int64_t i = 0; i < acc.size(0); ++i) {
      const double v = acc[i][0];
      if (!std::isfinite(v)) {
        continue;
      }
      ++n;
      const double pos = (v - lo) / bin_width;
      if (pos >= 0 && pos <= bins) {
        hist[std::min(bins - 1, static_cast<int>(pos))] += 1.0;
      }
    }
    for (double& h : hist) {
      h = n > 0 ? h / (n * bin_width) : 0.0;
    }
    return hist;
  };
  const std::vector<double> data_hist = density(to_cpu_points(data, 1, "data"));
  const std::vector<double> sample_hist = density(to_cpu_points(samples, 1, "samples"));
  double y_max = 0.0;
  for (int b = 0; b < bins; ++b) {
    y_max = std::max({y_max, data_hist[b], sample_hist[b]});
  }
  y_max = y_max > 0 ? 1.05 * y_max : 1.0;

  Canvas canvas(width_px, height_px);
  const int margin = 6;
  const int x0 = margin, x1 = width_px - 1 - margin, y0 = margin, y1 = height_px - 1 - margin;
  canvas.vline((x0 + x1) / 2, y0, y1, kAxis);
  auto bin_left = [&](int b) {
    return x0 + static_cast<int>(std::lround(double(b) * (x1 - x0) / bins));
  };
  auto bar_top = [&](double d) {
    return y1 - static_cast<int>(std::lround(d / y_max * (y1 - y0)));
  };
  for (int b = 0; b < bins; ++b) {
    if (data_hist[b] > 0) {
      canvas.fill_rect(bin_left(b), bar_top(data_hist[b]), bin_left(b + 1) - 1, y1, kDataBar);
    }
  }
  // Samples: translucent bars so the data shows through, plus a solid outline as a step curve.
  int prev_top = y1;
  for (int b = 0; b < bins; ++b) {
    const int top = bar_top(sample_hist[b]);
    const int left = bin_left(b), right = bin_left(b + 1);
    if (sample_hist[b] > 0) {
      canvas.fill_rect(left, top, right - 1, y1, kBlue, 0.3);
    }
    canvas.vline(left, std::min(prev_top, top), std::max(prev_top, top), kBlue);
    canvas.hline(left, right, top, kBlue);
    prev_top = top;
  }
  canvas.vline(x1, prev_top, y1, kBlue);
  canvas.frame(x0, y0, x1, y1, kFrame);
  if (width_px >= 96) {
    caption(canvas, x0 + 4, y0 + 3,
            "x in [" + format_tick(lo, 3) + ", " + format_tick(lo + 2 * window.radius, 3) + "]",
            -1);
  }
  canvas.save_png(path);
}

namespace {

// Ticks at 1, 2 or 5 times a power of ten, about `target` of them over [lo, hi]; the range grows
// to the outer ticks.
std::vector<double> linear_ticks(double& lo, double& hi, int target) {
  const double raw = (hi - lo) / std::max(1, target);
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  double step = power;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * power;
    if (step >= raw) {
      break;
    }
  }
  lo = std::floor(lo / step + 1e-9) * step;
  hi = std::ceil(hi / step - 1e-9) * step;
  std::vector<double> ticks;
  for (double t = lo; t <= hi + step * 1e-6; t += step) {
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  }
  return ticks;
}

// Ticks at powers of ten (every k-th when there are many); the range grows to whole decades.
std::vector<double> log_ticks(double& lo, double& hi) {
  const double a = std::floor(std::log10(lo)), b = std::ceil(std::log10(hi));
  lo = std::pow(10.0, a);
  hi = std::pow(10.0, std::max(b, a + 1));
  const int decades = static_cast<int>(std::log10(hi / lo) + 0.5);
  const int every = std::max(1, (decades + 5) / 6);
  std::vector<double> ticks;
  for (int k = 0; k <= decades; k += every) {
    ticks.push_back(lo * std::pow(10.0, k));
  }
  return ticks;
}

struct Axes {
  LinePlotFrame frame;
  std::vector<double> x_ticks, y_ticks;
};

Axes layout(const LinePlot& plot, int width_px, int height_px) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  double x_min = kInf, x_max = -kInf, y_min = kInf, y_max = -kInf, y_pos_min = kInf;
  for (const auto& s : plot.series) {
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) {
        x_min = std::min(x_min, s.x[i]);
        x_max = std::max(x_max, s.x[i]);
        y_min = std::min(y_min, s.y[i]);
        y_max = std::max(y_max, s.y[i]);
        if (s.y[i] > 0) {
          y_pos_min = std::min(y_pos_min, s.y[i]);
        }
      }
    }
  }
  Axes axes;
  auto& f = axes.frame;
  if (!(x_min <= x_max)) {  // nothing finite to draw: unit axes, empty frame
    x_min = 0, x_max = 1, y_min = 0, y_max = 1;
  }
  // log: asked for, or automatic when every value is positive and they span 2+ decades.
  f.log_y = plot.y_scale == LinePlot::Scale::log
                ? y_pos_min < kInf
                : plot.y_scale == LinePlot::Scale::automatic && y_min > 0 && y_max >= 100 * y_min;
  auto widen = [](double& lo, double& hi) {  // a constant series still gets a visible range
    if (hi - lo <= 1e-12 * std::max(1.0, std::abs(hi))) {
      const double pad = std::max(1e-3, std::abs(hi)) * 0.5;
      lo -= pad, hi += pad;
    }
  };
  widen(x_min, x_max);
  axes.x_ticks = linear_ticks(x_min, x_max, std::max(2, width_px / 110));
  if (f.log_y) {
    y_min = y_pos_min;
    axes.y_ticks = log_ticks(y_min, y_max);
  } else {
    widen(y_min, y_max);
    axes.y_ticks = linear_ticks(y_min, y_max, std::max(2, height_px / 70));
  }
  f.x_min = x_min, f.x_max = x_max, f.y_min = y_min, f.y_max = y_max;
  int label_width = 0;
  for (double t : axes.y_ticks) {
    label_width = std::max(label_width, plot_detail::render_text(format_tick(t), kTickText).width);
  }
  f.left = 8 + (plot.y_label.empty() ? 0 : static_cast<int>(kLabelText) + 8) + label_width + 6;
  f.right = width_px - 16;
  f.top = plot.title.empty() ? 10 : static_cast<int>(kTitleText) + 16;
  f.bottom = height_px - 1 - (static_cast<int>(kTickText) + 10) -
             (plot.x_label.empty() ? 0 : static_cast<int>(kLabelText) + 8);
  return axes;
}

}  // namespace

double LinePlotFrame::px(double x) const {
  return left + (x - x_min) / (x_max - x_min) * (right - left);
}

double LinePlotFrame::py(double y) const {
  const double t =
      log_y ? std::log10(y / y_min) / std::log10(y_max / y_min) : (y - y_min) / (y_max - y_min);
  return bottom - t * (bottom - top);
}

LinePlotFrame line_plot_frame(const LinePlot& plot, int width_px, int height_px) {
  return layout(plot, width_px, height_px).frame;
}

void save_line_plot_png(const std::string& path, const LinePlot& plot, int width_px,
                        int height_px) {
  write_file_atomic(path, line_plot_png(plot, width_px, height_px));
}

std::string line_plot_png(const LinePlot& plot, int width_px, int height_px) {
  TORCH_CHECK(width_px >= 160 && height_px >= 120, "line plot too small: ", width_px, "x",
              height_px, " (at least 160x120)");
  const Axes axes = layout(plot, width_px, height_px);
  const auto& f = axes.frame;
  Canvas canvas(width_px, height_px);
  for (double t : axes.x_ticks) {
    const int x = static_cast<int>(std::lround(f.px(t)));
    canvas.vline(x, f.top, f.bottom, kGrid);
    canvas.vline(x, f.bottom, f.bottom + 4, kFrame);
    canvas.text(x, f.bottom + 6, format_tick(t), kTickText, kText, 0, -1);
  }
  for (double t : axes.y_ticks) {
    const int y = static_cast<int>(std::lround(f.py(t)));
    canvas.hline(f.left, f.right, y, kGrid);
    canvas.hline(f.left - 4, f.left, y, kFrame);
    canvas.text(f.left - 6, y, format_tick(t), kTickText, kText, 1, 0);
  }
  if (!f.log_y && f.y_min < 0 && f.y_max > 0) {
    canvas.hline(f.left, f.right, static_cast<int>(std::lround(f.py(0.0))), kFrame);
  }
  canvas.frame(f.left, f.top, f.right, f.bottom, kFrame);
  if (!plot.title.empty()) {
    canvas.text((f.left + f.right) / 2.0, 6, plot.title, kTitleText, kText, 0, -1);
  }
  if (!plot.x_label.empty()) {
    canvas.text((f.left + f.right) / 2.0, height_px - 4, plot.x_label, kLabelText, kText, 0, 1);
  }
  if (!plot.y_label.empty()) {
    canvas.text(6, (f.top + f.bottom) / 2.0, plot.y_label + (f.log_y ? " (log scale)" : ""),
                kLabelText, kText, -1, 0, /*vertical=*/true);
  }

  const double line_width = std::max(1.5, height_px / 240.0);
  for (size_t s = 0; s < plot.series.size(); ++s) {
    const Rgb& colour = kPalette[s % std::size(kPalette)];
    const auto& x = plot.series[s].x;
    const auto& y = plot.series[s].y;
    const size_t n = std::min(x.size(), y.size());
    auto ok = [&](size_t i) {
      return i < n && std::isfinite(x[i]) && std::isfinite(y[i]) && (!f.log_y || y[i] > 0);
    };
    for (size_t i = 0; i < n; ++i) {
      if (!ok(i)) {
        continue;  // a non-finite value (or a non-positive one on a log axis) breaks the line
      }
      if (ok(i + 1)) {
        canvas.line(f.px(x[i]), f.py(y[i]), f.px(x[i + 1]), f.py(y[i + 1]), line_width, colour);
      } else if (i == 0 || !ok(i - 1)) {
        canvas.dot(f.px(x[i]), f.py(y[i]), line_width, colour, 1.0);  // isolated point
      }
    }
  }
  // Legend: a swatch and the name of each named series, top right inside the frame.
  std::vector<size_t> named;
  for (size_t s = 0; s < plot.series.size(); ++s) {
    if (!plot.series[s].name.empty()) {
      named.push_back(s);
    }
  }
  if (named.size() >= 2) {
    const int row = static_cast<int>(kTickText) + 6;
    int text_width = 0;
    for (size_t s : named) {
      text_width =
          std::max(text_width, plot_detail::render_text(plot.series[s].name, kTickText).width);
    }
    const int x1 = f.right - 6, x0 = x1 - (text_width + 36), y0 = f.top + 6;
    const int y1 = y0 + static_cast<int>(named.size()) * row + 6;
    canvas.fill_rect(x0, y0, x1, y1, {255, 255, 255}, 0.9);
    canvas.frame(x0, y0, x1, y1, kFrame);
    for (size_t k = 0; k < named.size(); ++k) {
      const Rgb& colour = kPalette[named[k] % std::size(kPalette)];
      const double cy = y0 + 3 + (k + 0.5) * row;
      canvas.line(x0 + 6, cy, x0 + 26, cy, line_width, colour);
      canvas.text(x0 + 32, cy, plot.series[named[k]].name, kTickText, kText, -1, 0);
    }
  }
  return canvas.png();
}

}  // namespace uotflow

namespace uotflow {

torch::Tensor image_grid(const torch::Tensor& images, int64_t columns, int64_t padding,
                         int64_t scale) {
  TORCH_CHECK(images.dim() == 4 && images.size(0) > 0,
              "image_grid: images must be [N, C, H, W] with N > 0, got ", images.sizes());
  TORCH_CHECK(columns > 0 && padding >= 0 && scale > 0,
              "image_grid: columns and scale must be > 0 and padding >= 0");
  auto x = images.detach().to(torch::kCPU, torch::kFloat32);
  if (scale > 1) {
    x = x.repeat_interleave(scale, 2).repeat_interleave(scale, 3);
  }
  const int64_t n = x.size(0);
  const int64_t c = x.size(1);
  const int64_t h = x.size(2);
  const int64_t w = x.size(3);
  const int64_t cols = std::min(columns, n);
  const int64_t rows = (n + cols - 1) / cols;
  auto grid = torch::zeros({c, rows * (h + padding) + padding, cols * (w + padding) + padding},
                           torch::kUInt8);
  // [-1, 1] -> {0..255}; NaNs (a diverged sample) show as black.
  auto pixels = torch::nan_to_num((x + 1.0) * 127.5, 0.0).round().clamp(0, 255).to(torch::kUInt8);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t top = padding + (i / cols) * (h + padding);
    const int64_t left = padding + (i % cols) * (w + padding);
    grid.slice(1, top, top + h).slice(2, left, left + w).copy_(pixels[i]);
  }
  return grid;
}

void save_image_png(const std::string& path, const torch::Tensor& image) {
  TORCH_CHECK(image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3),
              "save_image_png: image must be [C, H, W] with C = 1 or 3, got ", image.sizes());
  const auto pixels = image.to(torch::kUInt8).permute({1, 2, 0}).contiguous();  // [H, W, C]
  write_png(path, pixels.data_ptr<uint8_t>(), static_cast<int>(image.size(2)),
            static_cast<int>(image.size(1)), static_cast<int>(image.size(0)));
}

namespace {

// Copies a uint8 picture [C, H, W] (C = 1 or 3) onto the canvas with its top-left corner at
// (left, top).
void paste(Canvas& canvas, const torch::Tensor& picture, int left, int top) {
  const auto rgb = picture.expand({3, -1, -1}).permute({1, 2, 0}).contiguous();  // [H, W, 3]
  const auto* px = rgb.data_ptr<uint8_t>();
  for (int64_t y = 0; y < rgb.size(0); ++y) {
    for (int64_t x = 0; x < rgb.size(1); ++x) {
      const uint8_t* p = px + 3 * (y * rgb.size(1) + x);
      canvas.blend(left + static_cast<int>(x), top + static_cast<int>(y), {p[0], p[1], p[2]});
    }
  }
}

}  // namespace

void save_image_grid_png(const std::string& path, const torch::Tensor& images, int64_t columns,
                         int64_t scale, const std::string& title) {
  const auto grid = image_grid(images, columns, 2, scale);
  if (title.empty()) {
    save_image_png(path, grid);
    return;
  }
  const int band = static_cast<int>(kLabelText) + 10;
  Canvas canvas(static_cast<int>(grid.size(2)), band + static_cast<int>(grid.size(1)));
  canvas.text(4, band / 2.0, title, kLabelText, kText, -1, 0);
  paste(canvas, grid, 0, band);
  canvas.save_png(path);
}

void save_labelled_image_rows_png(const std::string& path, const std::vector<torch::Tensor>& rows,
                                  const std::vector<std::string>& labels, int64_t scale) {
  TORCH_CHECK(!rows.empty() && rows.size() == labels.size(),
              "save_labelled_image_rows_png: one label per row, at least one row");
  std::vector<torch::Tensor> grids;  // [C, H', W'] uint8, one grid row each
  int label_width = 0;
  int64_t width = 0, height = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    grids.push_back(image_grid(rows[i], rows[i].size(0), 2, scale));
    width = std::max(width, grids.back().size(2));
    height += grids.back().size(1);
    label_width = std::max(label_width, plot_detail::render_text(labels[i], kLabelText).width);
  }
  const int left = label_width + 12;
  Canvas canvas(left + static_cast<int>(width), static_cast<int>(height));
  int top = 0;
  for (size_t i = 0; i < grids.size(); ++i) {
    paste(canvas, grids[i], left, top);
    canvas.text(left - 6, top + grids[i].size(1) / 2.0, labels[i], kLabelText, kText, 1, 0);
    top += static_cast<int>(grids[i].size(1));
  }
  canvas.save_png(path);
}

}  // namespace uotflow
