#include "common/weight_chunks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace rlpost {
namespace {

using ::testing::HasSubstr;

std::vector<RawTensor> Tensors() {
  RawTensor a{"a.weight", RawDType::kFloat32, {3, 5}, std::string(60, 'x')};
  RawTensor b{"b.weight", RawDType::kFloat32, {2}, std::string(8, 'y')};
  for (size_t i = 0; i < a.bytes.size(); ++i) a.bytes[i] = static_cast<char>(i);
  return {a, b};
}

TEST(WeightChunksTest, ChunkAndAssembleRoundTrip) {
  auto chunks = ChunkWeights(7, Tensors(), 16);
  EXPECT_EQ(chunks.size(), 5u);  // 60 bytes -> 4 chunks, 8 bytes -> 1
  WeightAssembler asm_;
  for (const auto& c : chunks) ASSERT_TRUE(asm_.Add(c).ok());
  auto out = asm_.Finish();
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(asm_.version(), 7);
  EXPECT_EQ((*out)[0].bytes, Tensors()[0].bytes);
  EXPECT_EQ((*out)[1].shape, std::vector<int64_t>{2});
}

TEST(WeightChunksTest, CorruptChunkIsDataLossNamingTheTensor) {
  auto chunks = ChunkWeights(1, Tensors(), 16);
  chunks[1].mutable_data()->at(0) ^= 1;
  WeightAssembler asm_;
  ASSERT_TRUE(asm_.Add(chunks[0]).ok());
  absl::Status s = asm_.Add(chunks[1]);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(s.message()), HasSubstr("a.weight"));
}

TEST(WeightChunksTest, MissingAndReorderedChunksAreRejected) {
  auto chunks = ChunkWeights(1, Tensors(), 16);
  WeightAssembler missing;
  for (size_t i = 0; i + 1 < chunks.size(); ++i) ASSERT_TRUE(missing.Add(chunks[i]).ok());
  EXPECT_THAT(std::string(missing.Finish().status().message()), HasSubstr("1 of 2 tensors"));
  WeightAssembler reordered;
  ASSERT_TRUE(reordered.Add(chunks[0]).ok());
  EXPECT_THAT(std::string(reordered.Add(chunks[2]).message()), HasSubstr("expected offset"));
  WeightAssembler mixed;
  ASSERT_TRUE(mixed.Add(chunks[0]).ok());
  auto other = ChunkWeights(2, Tensors(), 16);
  EXPECT_THAT(std::string(mixed.Add(other[1]).message()), HasSubstr("version"));
}

}  // namespace
}  // namespace rlpost
