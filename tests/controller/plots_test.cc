// PNG line plots: a valid PNG of the asked size whose pixels hold the line.
#include "controller/plots.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace rlpost {
namespace {

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

uint32_t U32(const std::string& b, size_t at) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(b[at])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(b[at + 1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(b[at + 2])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(b[at + 3]));
}

// The raw RGB rows (each after its filter byte) of a PNG this module wrote;
// checks every chunk's CRC on the way.
std::string Pixels(const std::string& png, uint32_t* w, uint32_t* h) {
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  std::string idat;
  for (size_t at = 8; at + 12 <= png.size();) {
    const uint32_t len = U32(png, at);
    const std::string type = png.substr(at + 4, 4);
    const std::string body = png.substr(at + 4, 4 + len);
    EXPECT_EQ(U32(png, at + 8 + len),
              crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())))
        << type;
    if (type == "IHDR") {
      *w = U32(png, at + 8);
      *h = U32(png, at + 12);
    }
    if (type == "IDAT") idat += png.substr(at + 8, len);
    at += 12 + len;
  }
  std::string raw(static_cast<size_t>(*w * 3 + 1) * *h, '\0');
  uLongf size = static_cast<uLongf>(raw.size());
  EXPECT_EQ(uncompress(reinterpret_cast<Bytef*>(raw.data()), &size,
                       reinterpret_cast<const Bytef*>(idat.data()), static_cast<uLong>(idat.size())),
            Z_OK);
  EXPECT_EQ(size, raw.size());
  return raw;
}

TEST(PlotsTest, WritesAValidPngWithTheLineDrawn) {
  const std::string dir = ::testing::TempDir() + "/plots_test";
  std::filesystem::create_directories(dir);
  LinePlot plot;
  plot.title = "reward (mean per step)";
  plot.x_label = "rl step";
  for (int i = 1; i <= 20; ++i) {
    plot.x.push_back(i);
    plot.y.push_back(i % 2 ? 0.1 * i : std::nan(""));  // gaps are skipped
  }
  ASSERT_TRUE(WriteLinePlotPng(plot, dir + "/p.png", 320, 200).ok());
  uint32_t w = 0, h = 0;
  const std::string raw = Pixels(ReadBytes(dir + "/p.png"), &w, &h);
  EXPECT_EQ(w, 320u);
  EXPECT_EQ(h, 200u);
  int line = 0, white = 0;
  for (uint32_t y = 0; y < h; ++y) {
    EXPECT_EQ(raw[y * (w * 3 + 1)], '\0');  // filter: none
    for (uint32_t x = 0; x < w; ++x) {
      const uint8_t* p = reinterpret_cast<const uint8_t*>(&raw[y * (w * 3 + 1) + 1 + x * 3]);
      if (p[0] == 31 && p[1] == 119 && p[2] == 180) ++line;
      if (p[0] == 255 && p[1] == 255 && p[2] == 255) ++white;
    }
  }
  EXPECT_GT(line, 30);                // the points (and no segments across gaps)
  EXPECT_GT(white, 320 * 200 / 2);    // mostly background
  EXPECT_FALSE(WriteLinePlotPng(LinePlot{"t", "x", {1, 2}, {1}}, dir + "/bad.png").ok());
}

TEST(PlotsTest, RunPlotsComeFromMetricsJsonl) {
  const std::string dir = ::testing::TempDir() + "/plots_run";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/metrics.jsonl")
      << R"({"step":1,"reward_mean":0.2,"accuracy":0.2,"response_len_mean":30,"tokens_per_sec":900})"
      << "\n"
      << R"({"step":2,"reward_mean":0.5,"accuracy":0.5,"response_len_mean":28,"tokens_per_sec":950})"
      << "\n";
  std::vector<std::string> written;
  ASSERT_TRUE(WriteRunPlots(dir + "/metrics.jsonl", dir + "/plots", &written).ok());
  ASSERT_EQ(written.size(), 4u);
  for (const std::string& f : {"reward.png", "accuracy.png", "response_length.png",
                               "throughput.png"}) {
    EXPECT_TRUE(std::filesystem::exists(dir + "/plots/" + f)) << f;
  }
  EXPECT_EQ(WriteRunPlots(dir + "/missing.jsonl", dir + "/plots", nullptr).code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace rlpost
