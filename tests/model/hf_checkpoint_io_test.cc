#include "model/hf_checkpoint_io.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/model/safetensors_test_util.h"

namespace rlpost {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using testing_util::PatternTensor;
using testing_util::ReadFileBytes;
using testing_util::StatusIs;
using testing_util::WriteFileBytes;

// A fresh, empty directory for one test.
std::string FreshDir(const std::string& name) {
  std::string dir = ::testing::TempDir() + "/hf_ckpt_" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::set<std::string> FilesIn(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

void ExpectSameTensors(const std::vector<RawTensor>& got, const std::vector<RawTensor>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].name, want[i].name);
    EXPECT_EQ(got[i].dtype, want[i].dtype) << want[i].name;
    EXPECT_EQ(got[i].shape, want[i].shape) << want[i].name;
    EXPECT_TRUE(got[i].bytes == want[i].bytes) << want[i].name;
  }
}

// Five F32 tensors of 16 bytes each.
std::vector<RawTensor> FiveTensors() {
  std::vector<RawTensor> out;
  for (int i = 0; i < 5; ++i) {
    out.push_back(PatternTensor("model.layers." + std::to_string(i) + ".weight", RawDType::kFloat32,
                                {2, 2}, i));
  }
  return out;
}

nlohmann::json ReadIndex(const std::string& dir) {
  return nlohmann::json::parse(ReadFileBytes(dir + "/" + kWeightsIndexFileName));
}

void WriteIndex(const std::string& dir, const nlohmann::json& index) {
  WriteFileBytes(dir + "/" + kWeightsIndexFileName, index.dump());
}

TEST(HfCheckpointIoTest, ShardFileNamesFollowHuggingFace) {
  EXPECT_EQ(ShardFileName(1, 3), "model-00001-of-00003.safetensors");
  EXPECT_EQ(ShardFileName(12, 123), "model-00012-of-00123.safetensors");
}

TEST(HfCheckpointIoTest, EverythingFitsInOneFile) {
  std::string dir = FreshDir("single");
  std::vector<RawTensor> tensors = FiveTensors();
  ASSERT_TRUE(WriteCheckpointWeights(dir, tensors, 80).ok());
  EXPECT_EQ(FilesIn(dir), (std::set<std::string>{"model.safetensors"}));
  absl::StatusOr<std::vector<RawTensor>> back = ReadCheckpointWeights(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameTensors(*back, tensors);
}

TEST(HfCheckpointIoTest, ThreeShardsWithIndex) {
  std::string dir = FreshDir("three");
  std::vector<RawTensor> tensors = FiveTensors();
  ASSERT_TRUE(WriteCheckpointWeights(dir, tensors, 40).ok());  // 2 + 2 + 1 tensors
  EXPECT_EQ(
      FilesIn(dir),
      (std::set<std::string>{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                             "model-00003-of-00003.safetensors", "model.safetensors.index.json"}));
  nlohmann::json index = ReadIndex(dir);
  EXPECT_EQ(index["metadata"]["total_size"], 80);
  nlohmann::json want_map = {
      {"model.layers.0.weight", "model-00001-of-00003.safetensors"},
      {"model.layers.1.weight", "model-00001-of-00003.safetensors"},
      {"model.layers.2.weight", "model-00002-of-00003.safetensors"},
      {"model.layers.3.weight", "model-00002-of-00003.safetensors"},
      {"model.layers.4.weight", "model-00003-of-00003.safetensors"},
  };
  EXPECT_EQ(index["weight_map"], want_map);
  absl::StatusOr<std::vector<RawTensor>> back = ReadCheckpointWeights(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameTensors(*back, tensors);
  // Every shard carries HF's format metadata.
  absl::StatusOr<std::vector<RawTensor>> shard =
      ReadSafetensors(dir + "/model-00002-of-00003.safetensors");
  ASSERT_TRUE(shard.ok());
  EXPECT_EQ(shard->size(), 2u);
  std::string bytes = ReadFileBytes(dir + "/model-00002-of-00003.safetensors");
  EXPECT_THAT(bytes, HasSubstr(R"("__metadata__":{"format":"pt"})"));
}

TEST(HfCheckpointIoTest, TensorLargerThanMaxGetsItsOwnShard) {
  std::string dir = FreshDir("big");
  std::vector<RawTensor> tensors = {PatternTensor("a", RawDType::kBFloat16, {4}, 1),
                                    PatternTensor("big", RawDType::kFloat32, {25}, 2),
                                    PatternTensor("c", RawDType::kBFloat16, {4}, 3)};
  ASSERT_TRUE(WriteCheckpointWeights(dir, tensors, 16).ok());
  nlohmann::json index = ReadIndex(dir);
  EXPECT_EQ(index["metadata"]["total_size"], 8 + 100 + 8);
  EXPECT_EQ(index["weight_map"]["a"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["big"], "model-00002-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["c"], "model-00003-of-00003.safetensors");
  absl::StatusOr<std::vector<RawTensor>> back = ReadCheckpointWeights(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameTensors(*back, tensors);
}

TEST(HfCheckpointIoTest, ConvertsAcrossShardsOnRequest) {
  std::string dir = FreshDir("convert");
  std::vector<RawTensor> tensors = {
      {"a", RawDType::kBFloat16, {2}, testing_util::Bytes16({0x3f80, 0xc000})},
      {"b", RawDType::kFloat16, {1}, testing_util::Bytes16({0x3c00})}};
  ASSERT_TRUE(WriteCheckpointWeights(dir, tensors, 2).ok());
  SafetensorsReadOptions options;
  options.convert_to = RawDType::kFloat32;
  absl::StatusOr<std::vector<RawTensor>> back = ReadCheckpointWeights(dir, options);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ(testing_util::Words((*back)[0].bytes), (std::vector<uint32_t>{0x3f800000, 0xc0000000}));
  EXPECT_EQ(testing_util::Words((*back)[1].bytes), (std::vector<uint32_t>{0x3f800000}));
}

TEST(HfCheckpointIoTest, SwitchingLayoutsRemovesStaleFiles) {
  std::string dir = FreshDir("switch");
  std::vector<RawTensor> tensors = FiveTensors();
  WriteFileBytes(dir + "/config.json", "{}");
  WriteFileBytes(dir + "/model-1-of-2.safetensors", "not an HF shard name");

  ASSERT_TRUE(WriteCheckpointWeights(dir, tensors, 1000).ok());
  ASSERT_TRUE(WriteCheckpointWeights(dir, tensors, 40).ok());  // single -> 3 shards
  EXPECT_EQ(FilesIn(dir).count("model.safetensors"), 0u);
  EXPECT_EQ(FilesIn(dir).count("model-00003-of-00003.safetensors"), 1u);

  ASSERT_TRUE(WriteCheckpointWeights(dir, tensors, 48).ok());  // 3 shards -> 2 shards
  EXPECT_EQ(FilesIn(dir),
            (std::set<std::string>{
                "config.json", "model-1-of-2.safetensors", "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors", "model.safetensors.index.json"}));
  absl::StatusOr<std::vector<RawTensor>> back = ReadCheckpointWeights(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameTensors(*back, tensors);

  ASSERT_TRUE(WriteCheckpointWeights(dir, tensors, 1000).ok());  // shards -> single
  EXPECT_EQ(FilesIn(dir), (std::set<std::string>{"config.json", "model-1-of-2.safetensors",
                                                 "model.safetensors"}));
  back = ReadCheckpointWeights(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameTensors(*back, tensors);
}

TEST(HfCheckpointIoTest, CreatesTheDirectoryAndWritesEmptyCheckpoints) {
  std::string dir = ::testing::TempDir() + "/hf_ckpt_created/nested";
  fs::remove_all(::testing::TempDir() + "/hf_ckpt_created");
  ASSERT_TRUE(WriteCheckpointWeights(dir, {}, 10).ok());
  absl::StatusOr<std::vector<RawTensor>> back = ReadCheckpointWeights(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->empty());
}

TEST(HfCheckpointIoTest, WriteRejectsBadArgumentsBeforeWriting) {
  std::string dir = FreshDir("bad_args");
  std::vector<RawTensor> tensors = FiveTensors();
  EXPECT_THAT(WriteCheckpointWeights(dir, tensors, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_shard_bytes")));
  tensors.push_back(tensors[0]);
  EXPECT_THAT(WriteCheckpointWeights(dir, tensors, 40),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("model.layers.0.weight"), HasSubstr("more than once"))));
  // A malformed tensor in the last shard: earlier shards' temporary files go.
  tensors.pop_back();
  tensors.back().bytes.pop_back();
  EXPECT_THAT(WriteCheckpointWeights(dir, tensors, 40),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("model.layers.4.weight")));
  EXPECT_TRUE(FilesIn(dir).empty());
}

TEST(HfCheckpointIoTest, NeitherFileIsNotFound) {
  std::string dir = FreshDir("empty");
  EXPECT_THAT(ReadCheckpointWeights(dir),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr(dir), HasSubstr("model.safetensors.index.json"),
                             HasSubstr("nor model.safetensors"))));
  EXPECT_THAT(ReadCheckpointWeights(dir + "/missing"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
}

// A 3-shard checkpoint to break in the tests below.
std::string ShardedCheckpoint(const std::string& name) {
  std::string dir = FreshDir(name);
  EXPECT_TRUE(WriteCheckpointWeights(dir, FiveTensors(), 40).ok());
  return dir;
}

TEST(HfCheckpointIoTest, MissingShardFile) {
  std::string dir = ShardedCheckpoint("missing_shard");
  fs::remove(dir + "/model-00002-of-00003.safetensors");
  EXPECT_THAT(
      ReadCheckpointWeights(dir),
      StatusIs(absl::StatusCode::kNotFound, AllOf(HasSubstr("model.safetensors.index.json"),
                                                  HasSubstr("model-00002-of-00003.safetensors"),
                                                  HasSubstr("model.layers.2.weight"))));
}

TEST(HfCheckpointIoTest, TensorMissingFromItsShard) {
  std::string dir = ShardedCheckpoint("ghost");
  nlohmann::json index = ReadIndex(dir);
  index["weight_map"]["ghost.weight"] = "model-00001-of-00003.safetensors";
  WriteIndex(dir, index);
  EXPECT_THAT(
      ReadCheckpointWeights(dir),
      StatusIs(absl::StatusCode::kDataLoss,
               AllOf(HasSubstr("'ghost.weight'"), HasSubstr("model-00001-of-00003.safetensors"),
                     HasSubstr("does not contain it"))));
}

TEST(HfCheckpointIoTest, TensorInShardButNotInIndex) {
  std::string dir = ShardedCheckpoint("unlisted");
  nlohmann::json index = ReadIndex(dir);
  index["weight_map"].erase("model.layers.3.weight");
  WriteIndex(dir, index);
  EXPECT_THAT(ReadCheckpointWeights(dir),
              StatusIs(absl::StatusCode::kDataLoss, AllOf(HasSubstr("'model.layers.3.weight'"),
                                                          HasSubstr("not in the weight_map"))));
}

TEST(HfCheckpointIoTest, TensorMappedToAnotherShard) {
  std::string dir = ShardedCheckpoint("wrong_shard");
  nlohmann::json index = ReadIndex(dir);
  index["weight_map"]["model.layers.0.weight"] = "model-00003-of-00003.safetensors";
  WriteIndex(dir, index);
  EXPECT_THAT(ReadCheckpointWeights(dir),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("'model.layers.0.weight'")));
}

TEST(HfCheckpointIoTest, BadIndexFiles) {
  std::string dir = ShardedCheckpoint("bad_index");
  std::string index_path = dir + "/" + kWeightsIndexFileName;
  WriteFileBytes(index_path, "{\"weight_map\": {");
  EXPECT_THAT(ReadCheckpointWeights(dir),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(index_path), HasSubstr("not valid JSON"))));
  WriteFileBytes(index_path, "[]");
  EXPECT_THAT(ReadCheckpointWeights(dir),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("weight_map")));
  WriteFileBytes(index_path, R"({"metadata":{}})");
  EXPECT_THAT(ReadCheckpointWeights(dir),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("\"weight_map\" missing")));
  WriteFileBytes(index_path, R"({"weight_map":{"a":"x.safetensors","a":"y.safetensors"}})");
  EXPECT_THAT(ReadCheckpointWeights(dir),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("'a' appears more than once")));
  WriteFileBytes(index_path, R"({"weight_map":{"a":3}})");
  EXPECT_THAT(ReadCheckpointWeights(dir),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("tensor 'a'"), HasSubstr("expected a file name"))));
  for (const char* escape : {"../model-00001-of-00003.safetensors", "/etc/passwd", "..", ""}) {
    WriteFileBytes(index_path, nlohmann::json({{"weight_map", {{"a", escape}}}}).dump());
    EXPECT_THAT(ReadCheckpointWeights(dir),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr("expected a file name")))
        << escape;
  }
}

TEST(HfCheckpointIoTest, CorruptShardIsNamedWithTheIndex) {
  std::string dir = ShardedCheckpoint("corrupt_shard");
  std::string shard = dir + "/model-00003-of-00003.safetensors";
  std::string bytes = ReadFileBytes(shard);
  WriteFileBytes(shard, bytes.substr(0, bytes.size() - 1));
  EXPECT_THAT(ReadCheckpointWeights(dir),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("model.safetensors.index.json"), HasSubstr(shard),
                             HasSubstr("model.layers.4.weight"))));
}

// Random index files built from fragments: every outcome is a Status.
TEST(HfCheckpointIoTest, RandomIndexFilesNeverCrash) {
  std::string dir = ShardedCheckpoint("fuzz_index");
  std::vector<std::string> names = {"model.layers.0.weight", "model.layers.1.weight",
                                    "model.layers.2.weight", "model.layers.3.weight",
                                    "model.layers.4.weight", "ghost"};
  std::vector<std::string> files = {"\"model-00001-of-00003.safetensors\"",
                                    "\"model-00002-of-00003.safetensors\"",
                                    "\"model-00003-of-00003.safetensors\"",
                                    "\"nope.safetensors\"",
                                    "\"..\"",
                                    "1",
                                    "null",
                                    "[]",
                                    "{}"};
  std::vector<std::string> junk = {"", ",", "{", "}", "\"", ":", "[", "]", "1e999", "-0"};
  std::mt19937_64 rng(99);
  int ok = 0;
  for (int i = 0; i < 400; ++i) {
    std::string text = "{";
    if (rng() % 4 != 0) text += R"("metadata":{"total_size":80},)";
    text += "\"weight_map\":{";
    int n = static_cast<int>(rng() % 7);
    for (int k = 0; k < n; ++k) {
      if (k > 0) text += ",";
      text += "\"" + names[rng() % names.size()] + "\":" + files[rng() % files.size()];
    }
    text += "}}";
    if (rng() % 5 == 0) text.insert(rng() % (text.size() + 1), junk[rng() % junk.size()]);
    WriteFileBytes(dir + "/" + kWeightsIndexFileName, text);
    absl::StatusOr<std::vector<RawTensor>> r = ReadCheckpointWeights(dir);
    if (r.ok()) {
      ++ok;
    } else {
      EXPECT_TRUE(r.status().code() == absl::StatusCode::kDataLoss ||
                  r.status().code() == absl::StatusCode::kNotFound)
          << r.status();
    }
  }
  EXPECT_GT(ok, 0);  // the generator does produce valid indexes
}

}  // namespace
}  // namespace rlpost
