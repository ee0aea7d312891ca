#include "model/checkpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/types.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

namespace rlpost {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("rlpost_ckpt_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

ModelConfig Config(const std::string& type) {
  ModelConfig c;
  c.model_type = type;
  c.vocab_size = 30;
  c.n_layers = 2;
  c.d_model = 16;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.n_experts = 3;
  c.top_k = 2;
  c.expert_hidden = 8;
  c.intermediate_size = 12;
  c.qk_norm = type == "qwen3_moe" ? QkNorm::kPerHead : type == "olmoe" ? QkNorm::kFull : QkNorm::kNone;
  if (type == "qwen2_moe") {
    c.qkv_bias = true;
    c.shared_expert_hidden = 8;
    c.shared_expert_gate = true;
  }
  if (type == "rlpost_moe") {
    c.mtp_layers = 1;
    c.tie_word_embeddings = true;
    c.first_k_dense = 1;
  }
  return c;
}

at::Tensor Logits(MoeTransformer& m) {
  torch::NoGradGuard no_grad;
  PaddedBatch b = LeftPad({{1, 5, 7, 9, 3}, {2, 4}});
  return m->Forward(b.tokens, b.positions, b.mask, nullptr).logits;
}

TEST_F(CheckpointTest, SaveLoadRoundTripIsExactForEveryFamily) {
  for (const char* type : {"qwen3_moe", "qwen2_moe", "mixtral", "olmoe", "rlpost_moe"}) {
    MoeTransformer m(Config(type));
    fs::path d = dir_ / type;
    ASSERT_TRUE(SaveCheckpoint(*m, d.string()).ok());
    EXPECT_TRUE(fs::exists(d / "model.safetensors"));
    auto loaded = LoadCheckpoint(d.string());
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_EQ((*loaded)->config().ToConfigJson(), m->config().ToConfigJson());
    EXPECT_TRUE(at::equal(Logits(*loaded), Logits(m))) << type;
  }
}

TEST_F(CheckpointTest, ShardedBf16CheckpointLoads) {
  MoeTransformer m(Config("qwen3_moe"));
  CheckpointWriteOptions options;
  options.dtype = RawDType::kBFloat16;
  options.max_shard_bytes = 2000;
  ASSERT_TRUE(SaveCheckpoint(*m, dir_.string(), options).ok());
  ASSERT_TRUE(fs::exists(dir_ / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir_ / "model.safetensors"));
  std::ifstream in(dir_ / "config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  EXPECT_EQ(config["torch_dtype"], "bfloat16");
  EXPECT_EQ(config["architectures"][0], "Qwen3MoeForCausalLM");
  auto loaded = LoadCheckpoint(dir_.string());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  // Every weight equals the bf16 rounding of the original.
  auto want = m->ExportWeights(RawDType::kBFloat16);
  auto got = (*loaded)->ExportWeights(RawDType::kBFloat16);
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(want[i].bytes, got[i].bytes) << want[i].name;
}

TEST_F(CheckpointTest, ErrorsNameWhatIsWrong) {
  auto s = LoadCheckpoint(dir_.string()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()), HasSubstr("config.json"));

  MoeTransformer m(Config("mixtral"));
  ASSERT_TRUE(SaveCheckpoint(*m, dir_.string()).ok());
  // A config that asks for a third layer the weights do not have.
  std::ifstream in(dir_ / "config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  in.close();
  config["num_hidden_layers"] = 3;
  std::ofstream(dir_ / "config.json") << config.dump();
  s = LoadCheckpoint(dir_.string()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("'model.layers.2."));
  EXPECT_THAT(std::string(s.message()), HasSubstr("missing"));

  config["num_hidden_layers"] = 2;
  config["model_type"] = "gpt2";
  std::ofstream(dir_ / "config.json") << config.dump();
  s = LoadCheckpoint(dir_.string()).status();
  EXPECT_THAT(std::string(s.message()), HasSubstr("config.json"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("supported: qwen3_moe"));
}

}  // namespace
}  // namespace rlpost
