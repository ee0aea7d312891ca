#include "model/safetensors.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace rlpost {
namespace {

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/" + name;
}

TEST(SafetensorsTest, RoundTrip) {
  RawTensor a{"model.norm.weight", RawDType::kFloat32, {2, 3}, std::string(24, '\x01')};
  RawTensor b{"lm_head.weight", RawDType::kBFloat16, {4}, std::string(8, '\x02')};
  std::string path = TempPath("rt.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {a, b}).ok());
  auto back = ReadSafetensors(path);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 2u);
  for (const RawTensor& t : *back) {
    const RawTensor& want = t.name == a.name ? a : b;
    EXPECT_EQ(t.shape, want.shape);
    EXPECT_EQ(t.bytes, want.bytes);
    EXPECT_EQ(t.dtype, want.dtype);
  }
}

TEST(SafetensorsTest, CorruptFilesGiveClearErrors) {
  std::string path = TempPath("bad.safetensors");
  {
    std::ofstream out(path, std::ios::binary);
    out << "abc";
  }
  auto r = ReadSafetensors(path);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  {
    std::ofstream out(path, std::ios::binary);
    out.write("\xff\xff\x00\x00\x00\x00\x00\x00", 8);
    out << "{}";
  }
  r = ReadSafetensors(path);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ReadSafetensors(TempPath("missing")).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace rlpost
