#pragma once
// Line plots of a run's per-step figures as PNG files, written at the end of
// a run (runs/<name>/plots/*.png): reward, accuracy, response length and
// throughput against the RL step. Self-contained rasteriser (a 5x7 bitmap
// font, lines, axes with ticks) and PNG encoder (zlib); no plotting library.
// Thread-compatible.

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace rlpost {

struct LinePlot {
  std::string title;    // top line; lower-case letters, digits and ()./%:+-
  std::string x_label;  // under the x axis
  std::vector<double> x;
  std::vector<double> y;  // same length as x; non-finite points are skipped
};

// Renders `plot` (width x height pixels, RGB) and writes it as PNG to
// `path`. An empty plot still gets axes and its title.
absl::Status WriteLinePlotPng(const LinePlot& plot, const std::string& path, int width = 720,
                              int height = 400);

// Reads metrics.jsonl and writes reward.png, accuracy.png,
// response_length.png and throughput.png into `dir` (created). Returns the
// files written.
absl::Status WriteRunPlots(const std::string& metrics_jsonl, const std::string& dir,
                           std::vector<std::string>* written);

}  // namespace rlpost
