// PNG plots drawn by hand on an RGB canvas (scatter, histogram, line plot) and encoded with
// stb_image_write.
#include "uotflow/io/plot.h"

#include "uotflow/io/files.h"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
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

// Encoding to memory and writing through write_file_atomic means a reader never sees half a PNG.
void write_png(const std::string& path, const uint8_t* pixels, int width, int height,
               int channels) {
  std::string png;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), size);
  };
  const int ok =
      stbi_write_png_to_func(append, &png, width, height, channels, pixels, channels * width);
  TORCH_CHECK(ok != 0, "cannot encode PNG for '", path, "'");
  write_file_atomic(path, png);
}

using Rgb = std::array<uint8_t, 3>;

constexpr Rgb kFrame = {190, 190, 190};
constexpr Rgb kAxis = {228, 228, 228};
constexpr Rgb kData = {90, 90, 90};
constexpr Rgb kDataBar = {185, 185, 185};
constexpr Rgb kBlue = {31, 119, 180};
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

  void save_png(const std::string& path) const {
    write_png(path, rgb_.data(), width_, height_, 3);
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

// One scatter panel of size_px x size_px with its left edge at x0: data (grey) then samples (blue).
void draw_scatter_panel(Canvas& canvas, int x0, int size_px, const torch::Tensor& data,
                        const torch::Tensor& samples, const PlotWindow& window) {
  const int last = size_px - 1;
  canvas.hline(x0, x0 + last, last / 2, kAxis);
  canvas.vline(x0 + last / 2, 0, last, kAxis);
  canvas.frame(x0, 0, x0 + last, last, kFrame);

  // Dots grow with the picture so a 1024 px snapshot looks like a 512 px one, only sharper.
  const double radius = std::max(1.0, 1.5 * size_px / 512.0);
  const double scale = last / (2.0 * window.radius);
  auto draw = [&](const torch::Tensor& points, const Rgb& colour, double alpha) {
    auto acc = points.accessor<float, 2>();
    for (int64_t i = 0; i < acc.size(0); ++i) {
      const double dx = acc[i][0] - window.centre_x;
      const double dy = acc[i][1] - window.centre_y;
      // The negated test also drops NaNs.
      if (!(std::abs(dx) <= window.radius && std::abs(dy) <= window.radius)) {
        continue;
      }
      // Image rows grow downwards, so y is flipped.
      canvas.dot(x0 + last / 2.0 + dx * scale, last / 2.0 - dy * scale, radius, colour, alpha);
    }
  };
  draw(to_cpu_points(data, 2, "data"), kData, 0.25);
  draw(to_cpu_points(samples, 2, "samples"), kBlue, 0.6);
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

void save_scatter_strip_png(const std::string& path, const torch::Tensor& data,
                            const std::vector<torch::Tensor>& panels, const PlotWindow& window,
                            int panel_px) {
  check_scatter_args(panel_px, window);
  TORCH_CHECK(!panels.empty(), "save_scatter_strip_png: no panels");
  const int gap = 4;
  const int count = static_cast<int>(panels.size());
  Canvas canvas(count * panel_px + (count - 1) * gap, panel_px);
  for (int i = 0; i < count; ++i) {
    draw_scatter_panel(canvas, i * (panel_px + gap), panel_px, data, panels[i], window);
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
  canvas.save_png(path);
}

void save_line_plot_png(const std::string& path, const std::vector<double>& x,
                        const std::vector<std::vector<double>>& series, int width_px,
                        int height_px) {
  TORCH_CHECK(width_px >= 16 && height_px >= 16,
              "save_line_plot_png: picture too small: ", width_px, "x", height_px);
  constexpr double kInf = std::numeric_limits<double>::infinity();
  double x_min = kInf, x_max = -kInf, y_min = kInf, y_max = -kInf;
  for (const auto& ys : series) {
    for (size_t i = 0; i < std::min(x.size(), ys.size()); ++i) {
      if (std::isfinite(x[i]) && std::isfinite(ys[i])) {
        x_min = std::min(x_min, x[i]);
        x_max = std::max(x_max, x[i]);
        y_min = std::min(y_min, ys[i]);
        y_max = std::max(y_max, ys[i]);
      }
    }
  }
  if (!(x_min <= x_max)) {  // nothing finite to draw: unit axes, empty frame
    x_min = 0, x_max = 1, y_min = 0, y_max = 1;
  }
  // A constant series still gets a visible range; then a 5% margin keeps lines off the frame.
  auto widen = [](double& lo, double& hi) {
    if (hi - lo <= 1e-12 * std::max(1.0, std::abs(hi))) {
      const double pad = std::max(1.0, std::abs(hi)) * 0.5;
      lo -= pad, hi += pad;
    }
    const double margin = 0.05 * (hi - lo);
    lo -= margin, hi += margin;
  };
  widen(x_min, x_max);
  widen(y_min, y_max);

  Canvas canvas(width_px, height_px);
  const int pad = 6;
  const double px0 = pad, px1 = width_px - 1 - pad, py0 = pad, py1 = height_px - 1 - pad;
  auto to_px = [&](double v) { return px0 + (v - x_min) / (x_max - x_min) * (px1 - px0); };
  auto to_py = [&](double v) { return py1 - (v - y_min) / (y_max - y_min) * (py1 - py0); };
  if (y_min < 0 && y_max > 0) {
    canvas.hline(pad, width_px - 1 - pad, static_cast<int>(std::lround(to_py(0.0))), kAxis);
  }
  canvas.frame(pad, pad, width_px - 1 - pad, height_px - 1 - pad, kFrame);

  const double line_width = std::max(1.5, height_px / 240.0);
  for (size_t s = 0; s < series.size(); ++s) {
    const Rgb& colour = kPalette[s % std::size(kPalette)];
    const auto& ys = series[s];
    const size_t n = std::min(x.size(), ys.size());
    auto ok = [&](size_t i) { return i < n && std::isfinite(x[i]) && std::isfinite(ys[i]); };
    for (size_t i = 0; i < n; ++i) {
      if (!ok(i)) {
        continue;  // a non-finite value breaks the line
      }
      if (ok(i + 1)) {
        canvas.line(to_px(x[i]), to_py(ys[i]), to_px(x[i + 1]), to_py(ys[i + 1]), line_width,
                    colour);
      } else if (i == 0 || !ok(i - 1)) {
        canvas.dot(to_px(x[i]), to_py(ys[i]), line_width, colour, 1.0);  // isolated point
      }
    }
  }
  canvas.save_png(path);
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

void save_image_grid_png(const std::string& path, const torch::Tensor& images, int64_t columns,
                         int64_t scale) {
  save_image_png(path, image_grid(images, columns, 2, scale));
}

}  // namespace uotflow
