// PNG pictures of samples: 2-D scatter plots over the data with fixed axes, 1-D histograms, line
// plots, image grids.
#pragma once

#include <torch/types.h>

#include <string>
#include <vector>

namespace uotflow {

/// Plot window: [centre - radius, centre + radius] on every axis shown.
struct PlotWindow {
  double centre_x = 0.0;
  double centre_y = 0.0;
  double radius = 1.0;
};

/// Scatter of `samples` [N, 2] (blue) over `data` [M, 2] (grey) in a fixed window, written as PNG.
/// Points outside the window are clipped. Either tensor may be empty.
void save_scatter_png(const std::string& path, const torch::Tensor& data,
                      const torch::Tensor& samples, const PlotWindow& window, int size_px = 512);

/// Scatter panels side by side (e.g. the phases of a flow), each as save_scatter_png draws it:
/// panels[i] [N_i, 2] over the same `data` [M, 2] and window. Needs at least one panel.
void save_scatter_strip_png(const std::string& path, const torch::Tensor& data,
                            const std::vector<torch::Tensor>& panels, const PlotWindow& window,
                            int panel_px = 256);

/// Histograms of 1-D `samples` [N] or [N, 1] (blue) over `data` (grey) on [centre - radius, centre
/// + radius].
void save_histogram_png(const std::string& path, const torch::Tensor& data,
                        const torch::Tensor& samples, const PlotWindow& window, int bins = 100,
                        int width_px = 640, int height_px = 320);

/// Line plot of y against x (several series share the axes), auto-scaled, with a zero line when in
/// range.
void save_line_plot_png(const std::string& path, const std::vector<double>& x,
                        const std::vector<std::vector<double>>& series, int width_px = 640,
                        int height_px = 360);

/// Tiles images [N, C, H, W] (values in [-1, 1], any float dtype) into one uint8 picture
/// [C, H', W'] with `columns` per row, `padding` black pixels between tiles and each pixel repeated
/// `scale` x `scale` times.
torch::Tensor image_grid(const torch::Tensor& images, int64_t columns, int64_t padding = 2,
                         int64_t scale = 1);

/// Writes a uint8 image [C, H, W] (C = 1 grey or 3 RGB) as PNG, atomically.
void save_image_png(const std::string& path, const torch::Tensor& image);

/// image_grid of `images` [N, C, H, W] in [-1, 1], written as PNG.
///
///   save_image_grid_png("samples/step-0001000.png", x.view({64, 1, 28, 28}), 8, 2);
void save_image_grid_png(const std::string& path, const torch::Tensor& images, int64_t columns = 8,
                         int64_t scale = 1);

}  // namespace uotflow
