// PNG pictures of samples: 2-D scatter plots over the data with fixed axes, 1-D histograms, line
// plots with axes, ticks, labels and legends, image grids.
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
/// Points outside the window are clipped. Either tensor may be empty. From 96 px on, the window's
/// range is written in the bottom-left corner ("x, y in [-4.5, 4.5]").
void save_scatter_png(const std::string& path, const torch::Tensor& data,
                      const torch::Tensor& samples, const PlotWindow& window, int size_px = 512);

/// A map between two point sets: `data` [M, 2] (grey, e.g. the target), the map's inputs [N, 2]
/// (orange), their images `outputs` [N, 2] (blue, row i the image of row i) and a line from each
/// of the first `arrows` inputs to its image, in a fixed window, as PNG.
void save_transport_png(const std::string& path, const torch::Tensor& data,
                        const torch::Tensor& inputs, const torch::Tensor& outputs,
                        const PlotWindow& window, int64_t arrows = 64, int size_px = 512);

/// Scatter panels side by side (e.g. the phases of a flow), each as save_scatter_png draws it:
/// panels[i] [N_i, 2] over the same `data` [M, 2] and window, labels[i] (e.g. "phase 3") in its
/// top-left corner (no labels: empty). Needs at least one panel.
void save_scatter_strip_png(const std::string& path, const torch::Tensor& data,
                            const std::vector<torch::Tensor>& panels, const PlotWindow& window,
                            int panel_px = 256, const std::vector<std::string>& labels = {});

/// Histograms of 1-D `samples` [N] or [N, 1] (blue) over `data` (grey) on [centre - radius, centre
/// + radius], the range written top left.
void save_histogram_png(const std::string& path, const torch::Tensor& data,
                        const torch::Tensor& samples, const PlotWindow& window, int bins = 100,
                        int width_px = 640, int height_px = 320);

/// A line plot: series of (x, y) on shared axes, with tick values, axis labels, a title and a
/// legend.
struct LineSeries {
  std::string name;  ///< shown in the legend ("" = not listed)
  std::vector<double> x;
  std::vector<double> y;  ///< non-finite values break the line
};
struct LinePlot {
  std::string title;  ///< e.g. "00003-uotm-8gaussians: sw2"
  std::string x_label = "step";
  std::string y_label;  ///< the quantity and its unit
  std::vector<LineSeries> series;
  /// automatic: a log y axis when every value is > 0 and they span two decades or more.
  enum class Scale { linear, log, automatic } y_scale = Scale::automatic;
};

/// Where save_line_plot_png draws: the data area in pixels (inclusive) and its axis ranges, which
/// extend the data's range to the outer tick values.
struct LinePlotFrame {
  int left = 0, top = 0, right = 0, bottom = 0;
  double x_min = 0, x_max = 1, y_min = 0, y_max = 1;
  bool log_y = false;
  double px(double x) const;  ///< pixel column of x
  double py(double y) const;  ///< pixel row of y
};
LinePlotFrame line_plot_frame(const LinePlot& plot, int width_px = 640, int height_px = 400);

/// Draws `plot` as a PNG: light grid lines at the ticks (1, 2, 5 x 10^k; powers of ten on a log
/// axis), tick values, axis labels, the title and, for two or more named series, a legend.
///
///   save_line_plot_png("plots/sw2.png", {"run: sw2", "step", "sw2", {{"uotm", steps, values}}});
void save_line_plot_png(const std::string& path, const LinePlot& plot, int width_px = 640,
                        int height_px = 400);
/// The same picture as PNG bytes (e.g. to embed in an HTML page).
std::string line_plot_png(const LinePlot& plot, int width_px = 640, int height_px = 400);

/// Tiles images [N, C, H, W] (values in [-1, 1], any float dtype) into one uint8 picture
/// [C, H', W'] with `columns` per row, `padding` black pixels between tiles and each pixel repeated
/// `scale` x `scale` times.
torch::Tensor image_grid(const torch::Tensor& images, int64_t columns, int64_t padding = 2,
                         int64_t scale = 1);

/// Writes a uint8 image [C, H, W] (C = 1 grey or 3 RGB) as PNG, atomically.
void save_image_png(const std::string& path, const torch::Tensor& image);

/// image_grid of `images` [N, C, H, W] in [-1, 1], written as PNG; a non-empty `title` (e.g.
/// "00003-uotm-fashion_mnist: step 1000") goes in a white band above the grid.
///
///   save_image_grid_png("samples/step-0001000.png", x.view({64, 1, 28, 28}), 8, 2);
void save_image_grid_png(const std::string& path, const torch::Tensor& images, int64_t columns = 8,
                         int64_t scale = 1, const std::string& title = "");

/// Rows of images, rows[i] [N_i, C, H, W] in [-1, 1] (e.g. samples at the end of each phase), one
/// row each with labels[i] ("phase 3") written on its left in a white margin, as PNG.
void save_labelled_image_rows_png(const std::string& path, const std::vector<torch::Tensor>& rows,
                                  const std::vector<std::string>& labels, int64_t scale = 1);

}  // namespace uotflow
