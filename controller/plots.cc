#include "controller/plots.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace rlpost {
namespace {

// 5x7 glyphs, one string per row, '#' = ink.
const std::map<char, std::array<const char*, 7>>& Font() {
  static const auto* font = new std::map<char, std::array<const char*, 7>>{
      {'0', {" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "}},
      {'1', {"  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "}},
      {'2', {" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"}},
      {'3', {"#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "}},
      {'4', {"   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "}},
      {'5', {"#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "}},
      {'6', {"  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "}},
      {'7', {"#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "}},
      {'8', {" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "}},
      {'9', {" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "}},
      {'a', {"     ", "     ", " ### ", "    #", " ####", "#   #", " ####"}},
      {'b', {"#    ", "#    ", "# ## ", "##  #", "#   #", "#   #", "#### "}},
      {'c', {"     ", "     ", " ### ", "#    ", "#    ", "#   #", " ### "}},
      {'d', {"    #", "    #", " ## #", "#  ##", "#   #", "#   #", " ####"}},
      {'e', {"     ", "     ", " ### ", "#   #", "#####", "#    ", " ### "}},
      {'f', {"  ## ", " #  #", " #   ", "###  ", " #   ", " #   ", " #   "}},
      {'g', {"     ", " ####", "#   #", "#   #", " ####", "    #", " ### "}},
      {'h', {"#    ", "#    ", "# ## ", "##  #", "#   #", "#   #", "#   #"}},
      {'i', {"  #  ", "     ", " ##  ", "  #  ", "  #  ", "  #  ", " ### "}},
      {'j', {"   # ", "     ", "  ## ", "   # ", "   # ", "#  # ", " ##  "}},
      {'k', {"#    ", "#    ", "#  # ", "# #  ", "##   ", "# #  ", "#  # "}},
      {'l', {" ##  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "}},
      {'m', {"     ", "     ", "## # ", "# # #", "# # #", "#   #", "#   #"}},
      {'n', {"     ", "     ", "# ## ", "##  #", "#   #", "#   #", "#   #"}},
      {'o', {"     ", "     ", " ### ", "#   #", "#   #", "#   #", " ### "}},
      {'p', {"     ", "     ", "#### ", "#   #", "#### ", "#    ", "#    "}},
      {'q', {"     ", "     ", " ## #", "#  ##", " ####", "    #", "    #"}},
      {'r', {"     ", "     ", "# ## ", "##  #", "#    ", "#    ", "#    "}},
      {'s', {"     ", "     ", " ####", "#    ", " ### ", "    #", "#### "}},
      {'t', {" #   ", " #   ", "###  ", " #   ", " #   ", " #  #", "  ## "}},
      {'u', {"     ", "     ", "#   #", "#   #", "#   #", "#  ##", " ## #"}},
      {'v', {"     ", "     ", "#   #", "#   #", "#   #", " # # ", "  #  "}},
      {'w', {"     ", "     ", "#   #", "#   #", "# # #", "# # #", " # # "}},
      {'x', {"     ", "     ", "#   #", " # # ", "  #  ", " # # ", "#   #"}},
      {'y', {"     ", "     ", "#   #", "#   #", " ####", "    #", " ### "}},
      {'z', {"     ", "     ", "#####", "   # ", "  #  ", " #   ", "#####"}},
      {'.', {"     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "}},
      {',', {"     ", "     ", "     ", "     ", " ##  ", "  #  ", " #   "}},
      {'-', {"     ", "     ", "     ", "#####", "     ", "     ", "     "}},
      {'+', {"     ", "  #  ", "  #  ", "#####", "  #  ", "  #  ", "     "}},
      {'/', {"     ", "    #", "   # ", "  #  ", " #   ", "#    ", "     "}},
      {'(', {"   # ", "  #  ", " #   ", " #   ", " #   ", "  #  ", "   # "}},
      {')', {" #   ", "  #  ", "   # ", "   # ", "   # ", "  #  ", " #   "}},
      {'%', {"##   ", "##  #", "   # ", "  #  ", " #   ", "#  ##", "   ##"}},
      {':', {"     ", " ##  ", " ##  ", "     ", " ##  ", " ##  ", "     "}},
      {'_', {"     ", "     ", "     ", "     ", "     ", "     ", "#####"}},
  };
  return *font;
}

struct Rgb {
  uint8_t r, g, b;
};

class Canvas {
 public:
  Canvas(int w, int h) : w_(w), h_(h), px_(static_cast<size_t>(w) * h * 3, 255) {}
  int width() const { return w_; }
  int height() const { return h_; }

  void Set(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= w_ || y >= h_) return;
    uint8_t* p = &px_[(static_cast<size_t>(y) * w_ + x) * 3];
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
  }
  void Line(int x0, int y0, int x1, int y1, Rgb c, int thick = 1) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
    const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    while (true) {
      for (int t = 0; t < thick; ++t) {
        Set(x0, y0 + t, c);
        Set(x0 + t, y0, c);
      }
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x0 += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y0 += sy;
      }
    }
  }
  // Text at (x, y) = top-left, `scale` pixels per font dot; returns width.
  int Text(int x, int y, const std::string& text, Rgb c, int scale = 1) {
    const int advance = 6 * scale;
    for (size_t i = 0; i < text.size(); ++i) {
      const char ch = static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
      auto it = Font().find(ch);
      if (it == Font().end()) continue;  // spaces and unknown characters
      for (int row = 0; row < 7; ++row) {
        for (int col = 0; col < 5; ++col) {
          if (it->second[static_cast<size_t>(row)][col] != '#') continue;
          for (int a = 0; a < scale; ++a) {
            for (int b = 0; b < scale; ++b) {
              Set(x + static_cast<int>(i) * advance + col * scale + a, y + row * scale + b, c);
            }
          }
        }
      }
    }
    return static_cast<int>(text.size()) * advance;
  }

  std::string Png() const {
    // Filter byte 0 (none) before each row, then zlib.
    std::string raw;
    raw.reserve(px_.size() + static_cast<size_t>(h_));
    for (int y = 0; y < h_; ++y) {
      raw.push_back('\0');
      raw.append(reinterpret_cast<const char*>(&px_[static_cast<size_t>(y) * w_ * 3]),
                 static_cast<size_t>(w_) * 3);
    }
    uLongf size = compressBound(static_cast<uLong>(raw.size()));
    std::string z(size, '\0');
    compress2(reinterpret_cast<Bytef*>(z.data()), &size,
              reinterpret_cast<const Bytef*>(raw.data()), static_cast<uLong>(raw.size()), 9);
    z.resize(size);
    std::string out("\x89PNG\r\n\x1a\n", 8);
    auto u32 = [](uint32_t v) {
      return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                         static_cast<char>(v >> 8), static_cast<char>(v)};
    };
    auto chunk = [&](const char* type, const std::string& data) {
      out += u32(static_cast<uint32_t>(data.size()));
      const std::string body = std::string(type, 4) + data;
      out += body;
      out += u32(static_cast<uint32_t>(
          crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()))));
    };
    std::string ihdr = u32(static_cast<uint32_t>(w_)) + u32(static_cast<uint32_t>(h_));
    ihdr += std::string{8, 2, 0, 0, 0};  // 8-bit RGB, deflate, no filter, no interlace
    chunk("IHDR", ihdr);
    chunk("IDAT", z);
    chunk("IEND", "");
    return out;
  }

 private:
  int w_, h_;
  std::vector<uint8_t> px_;
};

// A tick label: integers as such, else up to 3 significant digits.
std::string TickLabel(double v) {
  if (std::fabs(v - std::round(v)) < 1e-9 && std::fabs(v) < 1e9) {
    return absl::StrFormat("%.0f", v);
  }
  return absl::StrFormat("%.3g", v);
}

// About five "nice" tick values covering [lo, hi].
std::vector<double> Ticks(double lo, double hi) {
  const double span = hi - lo;
  const double raw = span / 5;
  const double mag = std::pow(10, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-6; t += step) ticks.push_back(t);
  return ticks;
}

}  // namespace

absl::Status WriteLinePlotPng(const LinePlot& plot, const std::string& path, int width,
                              int height) {
  if (plot.x.size() != plot.y.size()) {
    return absl::InvalidArgumentError("plot: x and y differ in length");
  }
  Canvas canvas(width, height);
  const Rgb ink{40, 40, 40}, grid{225, 225, 225}, line{31, 119, 180};
  const int left = 70, right = width - 20, top = 40, bottom = height - 50;
  canvas.Text(left, 12, plot.title, ink, 2);
  canvas.Text((left + right) / 2 - 3 * static_cast<int>(plot.x_label.size()), height - 18,
              plot.x_label, ink);

  double x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;
  bool any = false;
  for (size_t i = 0; i < plot.x.size(); ++i) {
    if (!std::isfinite(plot.x[i]) || !std::isfinite(plot.y[i])) continue;
    if (!any) {
      x_lo = x_hi = plot.x[i];
      y_lo = y_hi = plot.y[i];
      any = true;
    }
    x_lo = std::min(x_lo, plot.x[i]);
    x_hi = std::max(x_hi, plot.x[i]);
    y_lo = std::min(y_lo, plot.y[i]);
    y_hi = std::max(y_hi, plot.y[i]);
  }
  if (x_hi - x_lo < 1e-12) x_hi = x_lo + 1;
  if (y_hi - y_lo < 1e-12) {
    y_lo -= 0.5;
    y_hi += 0.5;
  }
  const double pad = 0.05 * (y_hi - y_lo);
  y_lo -= pad;
  y_hi += pad;
  auto px = [&](double x) {
    return left + static_cast<int>(std::lround((x - x_lo) / (x_hi - x_lo) * (right - left)));
  };
  auto py = [&](double y) {
    return bottom - static_cast<int>(std::lround((y - y_lo) / (y_hi - y_lo) * (bottom - top)));
  };
  for (double t : Ticks(y_lo, y_hi)) {
    const int y = py(t);
    canvas.Line(left, y, right, y, grid);
    const std::string label = TickLabel(t);
    canvas.Text(left - 8 - 6 * static_cast<int>(label.size()), y - 3, label, ink);
  }
  for (double t : Ticks(x_lo, x_hi)) {
    const int x = px(t);
    canvas.Line(x, bottom, x, bottom + 4, ink);
    const std::string label = TickLabel(t);
    canvas.Text(x - 3 * static_cast<int>(label.size()), bottom + 8, label, ink);
  }
  canvas.Line(left, top, left, bottom, ink);
  canvas.Line(left, bottom, right, bottom, ink);
  bool have_prev = false;
  int prev_x = 0, prev_y = 0;
  for (size_t i = 0; i < plot.x.size(); ++i) {
    if (!std::isfinite(plot.x[i]) || !std::isfinite(plot.y[i])) {
      have_prev = false;
      continue;
    }
    const int x = px(plot.x[i]), y = py(plot.y[i]);
    if (have_prev) canvas.Line(prev_x, prev_y, x, y, line, 2);
    if (plot.x.size() <= 60) {
      for (int a = -1; a <= 1; ++a) {
        for (int b = -1; b <= 1; ++b) canvas.Set(x + a, y + b, line);
      }
    }
    prev_x = x;
    prev_y = y;
    have_prev = true;
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << canvas.Png();
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write '", path, "'"));
  return absl::OkStatus();
}

absl::Status WriteRunPlots(const std::string& metrics_jsonl, const std::string& dir,
                           std::vector<std::string>* written) {
  std::ifstream in(metrics_jsonl);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read '", metrics_jsonl, "'"));
  struct Series {
    const char* file;
    const char* key;
    const char* title;
    LinePlot plot;
  };
  std::vector<Series> series = {
      {"reward.png", "reward_mean", "reward (mean per step)", {}},
      {"accuracy.png", "accuracy", "accuracy (fraction of samples correct)", {}},
      {"response_length.png", "response_len_mean", "response length (mean tokens)", {}},
      {"throughput.png", "tokens_per_sec", "throughput (generated tokens/s)", {}},
  };
  std::string line;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("step")) continue;
    for (Series& s : series) {
      s.plot.x.push_back(j.value("step", 0.0));
      s.plot.y.push_back(j.contains(s.key) && j[s.key].is_number() ? j[s.key].get<double>()
                                                                    : std::nan(""));
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create '", dir, "': ", ec.message()));
  for (Series& s : series) {
    s.plot.title = s.title;
    s.plot.x_label = "rl step";
    const std::string path = (std::filesystem::path(dir) / s.file).string();
    absl::Status st = WriteLinePlotPng(s.plot, path);
    if (!st.ok()) return st;
    if (written != nullptr) written->push_back(path);
  }
  return absl::OkStatus();
}

}  // namespace rlpost
