#include "model/model_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

namespace rlpost {
namespace {

using ::testing::HasSubstr;

// Abbreviated from the published Qwen3-30B-A3B config.json (sizes shrunk).
constexpr char kQwen3[] = R"({
  "architectures": ["Qwen3MoeForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "decoder_sparse_step": 1, "eos_token_id": 151645, "head_dim": 128,
  "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
  "intermediate_size": 6144, "max_position_embeddings": 40960, "max_window_layers": 48,
  "mlp_only_layers": [], "model_type": "qwen3_moe", "moe_intermediate_size": 768,
  "norm_topk_prob": true, "num_attention_heads": 32, "num_experts": 128,
  "num_experts_per_tok": 8, "num_hidden_layers": 48, "num_key_value_heads": 4,
  "output_router_logits": false, "rms_norm_eps": 1e-06, "rope_scaling": null,
  "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001, "sliding_window": null,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_cache": true,
  "use_sliding_window": false, "vocab_size": 151936})";

constexpr char kMixtral[] = R"({
  "architectures": ["MixtralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 14336,
  "max_position_embeddings": 32768, "model_type": "mixtral", "num_attention_heads": 32,
  "num_experts_per_tok": 2, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "num_local_experts": 8, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
  "router_aux_loss_coef": 0.02, "sliding_window": null, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "vocab_size": 32000})";

constexpr char kQwen2[] = R"({
  "model_type": "qwen2_moe", "hidden_size": 2048, "intermediate_size": 5632,
  "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632,
  "num_attention_heads": 16, "num_key_value_heads": 16, "num_experts": 60,
  "num_experts_per_tok": 4, "num_hidden_layers": 24, "vocab_size": 151936,
  "decoder_sparse_step": 1, "norm_topk_prob": false})";

constexpr char kOlmoe[] = R"({
  "model_type": "olmoe", "hidden_size": 2048, "intermediate_size": 1024,
  "num_attention_heads": 16, "num_key_value_heads": 16, "num_experts": 64,
  "num_experts_per_tok": 8, "num_hidden_layers": 16, "vocab_size": 50304,
  "clip_qkv": null, "norm_topk_prob": false, "rope_theta": 10000.0})";

TEST(ModelConfigTest, ParsesQwen3Moe) {
  auto c = ParseConfigJson(kQwen3);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_type, "qwen3_moe");
  EXPECT_EQ(c->d_model, 2048);
  EXPECT_EQ(c->head_dim(), 128);
  EXPECT_EQ(c->n_kv_heads, 4);
  EXPECT_EQ(c->n_experts, 128);
  EXPECT_EQ(c->top_k, 8);
  EXPECT_EQ(c->expert_hidden, 768);
  EXPECT_TRUE(c->norm_topk_prob);
  EXPECT_EQ(c->qk_norm, QkNorm::kPerHead);
  EXPECT_DOUBLE_EQ(c->rope_theta, 1e6);
  EXPECT_TRUE(c->IsMoeLayer(0));
}

TEST(ModelConfigTest, ParsesMixtralQwen2AndOlmoeWithTheirDefaults) {
  auto m = ParseConfigJson(kMixtral);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->n_experts, 8);
  EXPECT_EQ(m->expert_hidden, 14336);
  EXPECT_TRUE(m->norm_topk_prob);
  EXPECT_EQ(m->qk_norm, QkNorm::kNone);
  EXPECT_DOUBLE_EQ(m->rms_eps, 1e-5);

  auto q = ParseConfigJson(kQwen2);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_TRUE(q->qkv_bias);
  EXPECT_FALSE(q->o_bias);
  EXPECT_EQ(q->shared_expert_hidden, 5632);
  EXPECT_TRUE(q->shared_expert_gate);
  EXPECT_FALSE(q->norm_topk_prob);

  auto o = ParseConfigJson(kOlmoe);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->qk_norm, QkNorm::kFull);
  EXPECT_EQ(o->expert_hidden, 1024);
  EXPECT_DOUBLE_EQ(o->rms_eps, 1e-5);
}

TEST(ModelConfigTest, DenseLayersFollowSparseStepAndMlpOnlyLayers) {
  nlohmann::json j = nlohmann::json::parse(kQwen3);
  j["decoder_sparse_step"] = 2;
  j["mlp_only_layers"] = {3};
  auto c = ParseConfigJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->IsMoeLayer(0));
  EXPECT_TRUE(c->IsMoeLayer(1));
  EXPECT_FALSE(c->IsMoeLayer(3));
  EXPECT_TRUE(c->IsMoeLayer(5));
}

TEST(ModelConfigTest, WriteThenParseKeepsEveryFieldAndPassthrough) {
  for (const char* text : {kQwen3, kMixtral, kQwen2, kOlmoe}) {
    auto c = ParseConfigJson(text);
    ASSERT_TRUE(c.ok()) << c.status();
    std::string written = c->ToConfigJson("bfloat16");
    auto back = ParseConfigJson(written);
    ASSERT_TRUE(back.ok()) << back.status() << "\n" << written;
    EXPECT_EQ(back->ToConfigJson("bfloat16"), written);
    nlohmann::json j = nlohmann::json::parse(written);
    EXPECT_EQ(j["torch_dtype"], "bfloat16");
    EXPECT_EQ(j["model_type"], c->model_type);
  }
  nlohmann::json q = nlohmann::json::parse(ParseConfigJson(kQwen3)->ToConfigJson());
  EXPECT_EQ(q["bos_token_id"], 151643);  // fields we do not interpret survive
  EXPECT_EQ(q["architectures"][0], "Qwen3MoeForCausalLM");
  nlohmann::json m = nlohmann::json::parse(ParseConfigJson(kMixtral)->ToConfigJson());
  EXPECT_EQ(m["num_local_experts"], 8);
  EXPECT_FALSE(m.contains("num_experts"));
}

TEST(ModelConfigTest, OurOwnTypeRoundTripsEveryOption) {
  ModelConfig c;
  c.model_type = "rlpost_moe";
  c.qk_norm = QkNorm::kFull;
  c.first_k_dense = 1;
  c.shared_expert_hidden = 64;
  c.shared_expert_gate = false;
  c.tie_word_embeddings = true;
  c.mtp_layers = 1;
  c.init_seed = 42;
  auto back = ParseConfigJson(c.ToConfigJson());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->qk_norm, QkNorm::kFull);
  EXPECT_EQ(back->first_k_dense, 1);
  EXPECT_FALSE(back->IsMoeLayer(0));
  EXPECT_EQ(back->shared_expert_hidden, 64);
  EXPECT_TRUE(back->tie_word_embeddings);
  EXPECT_EQ(back->mtp_layers, 1);
  EXPECT_EQ(back->init_seed, 42u);
}

TEST(ModelConfigTest, UnknownModelTypeListsTheSupportedOnes) {
  auto c = ParseConfigJson(R"({"model_type": "llama", "hidden_size": 8})");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("'llama' is not supported"));
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("qwen3_moe, qwen2_moe, mixtral, olmoe, rlpost_moe"));
  c = ParseConfigJson(R"({"hidden_size": 8})");
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("'model_type' missing"));
}

TEST(ModelConfigTest, BadFieldsAreNamed) {
  auto with = [](const char* key, nlohmann::json value) {
    nlohmann::json j = nlohmann::json::parse(kQwen3);
    if (value.is_discarded()) {
      j.erase(key);
    } else {
      j[key] = value;
    }
    return ParseConfigJson(j.dump()).status();
  };
  nlohmann::json erase = nlohmann::json(nlohmann::json::value_t::discarded);
  EXPECT_THAT(std::string(with("hidden_size", erase).message()),
              HasSubstr("field 'hidden_size' is required"));
  EXPECT_THAT(std::string(with("num_experts", "many").message()),
              HasSubstr("field 'num_experts' must be an integer"));
  EXPECT_THAT(std::string(with("norm_topk_prob", 1).message()),
              HasSubstr("field 'norm_topk_prob' must be true or false"));
  EXPECT_THAT(std::string(with("rope_scaling", {{"rope_type", "yarn"}, {"factor", 4}}).message()),
              HasSubstr("rope_scaling 'yarn' is not supported"));
  EXPECT_THAT(std::string(with("use_sliding_window", true).message()),
              HasSubstr("sliding-window attention is not supported"));
  EXPECT_THAT(std::string(with("hidden_act", "gelu").message()),
              HasSubstr("hidden_act \"gelu\" is not supported"));
  EXPECT_THAT(std::string(with("num_experts_per_tok", 200).message()),
              HasSubstr("num_experts_per_tok (200) must be in 1..num_experts (128)"));
  EXPECT_THAT(std::string(with("num_key_value_heads", 5).message()),
              HasSubstr("must be a multiple of num_key_value_heads (5)"));
  EXPECT_TRUE(with("rope_scaling", {{"rope_type", "default"}}).ok());
  EXPECT_THAT(std::string(ParseConfigJson("{not json").status().message()),
              HasSubstr("not valid JSON"));
}

TEST(ModelConfigTest, ReadsTransformers5RopeParameters) {
  nlohmann::json j = nlohmann::json::parse(kQwen3);
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1000000.0}};
  auto c = ParseConfigJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->rope_theta, 1e6);
  // Written back with one rope_theta, not a stale rope_parameters.
  nlohmann::json out = nlohmann::json::parse(c->ToConfigJson());
  EXPECT_FALSE(out.contains("rope_parameters"));
  EXPECT_DOUBLE_EQ(out["rope_theta"].get<double>(), 1e6);
  j["rope_parameters"]["rope_type"] = "yarn";
  EXPECT_THAT(std::string(ParseConfigJson(j.dump()).status().message()),
              HasSubstr("rope_parameters.rope_type \"yarn\" is not supported"));
}

TEST(ModelConfigTest, KeyValueHeadDefaultsFollowEachFamily) {
  for (auto [text, want] : {std::pair<const char*, int64_t>{kQwen3, 4}, {kMixtral, 8},
                            {kQwen2, 16}, {kOlmoe, 16}}) {
    nlohmann::json j = nlohmann::json::parse(text);
    j.erase("num_key_value_heads");
    auto c = ParseConfigJson(j.dump());
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->n_kv_heads, want) << j["model_type"];
  }
}

TEST(ModelConfigTest, Qwen2MoeQkvBiasAndSharedExpertDefault) {
  nlohmann::json j = nlohmann::json::parse(kQwen2);
  j.erase("shared_expert_intermediate_size");
  j["qkv_bias"] = false;
  auto c = ParseConfigJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->shared_expert_hidden, 5632);
  EXPECT_FALSE(c->qkv_bias);
}

TEST(ModelConfigTest, FamilyRulesAreEnforced) {
  auto c = ParseConfigJson(kMixtral);
  ASSERT_TRUE(c.ok());
  c->shared_expert_hidden = 64;
  EXPECT_THAT(std::string(c->Validate().message()),
              HasSubstr("mixtral has no shared expert; use model_type rlpost_moe"));
  auto o = ParseConfigJson(kOlmoe);
  ASSERT_TRUE(o.ok());
  o->explicit_head_dim = 64;
  EXPECT_THAT(std::string(o->Validate().message()), HasSubstr("needs head_dim"));
  nlohmann::json j = nlohmann::json::parse(kQwen3);
  j["decoder_sparse_step"] = 0;
  EXPECT_THAT(std::string(ParseConfigJson(j.dump()).status().message()),
              HasSubstr("decoder_sparse_step must be at least 1"));
}

// Fuzz-style: random mutations of a valid config never crash and either parse
// to a valid config or give InvalidArgument.
TEST(ModelConfigTest, RandomMutationsGiveAStatus) {
  std::mt19937_64 rng(1234);
  const std::string base = kQwen3;
  const nlohmann::json values[] = {nullptr, -1, 0, 1, 3, 1e300, "x", true, nlohmann::json::array(),
                                   nlohmann::json::object(), 9223372036854775807LL};
  nlohmann::json j0 = nlohmann::json::parse(base);
  std::vector<std::string> keys;
  for (auto it = j0.begin(); it != j0.end(); ++it) keys.push_back(it.key());
  for (int i = 0; i < 3000; ++i) {
    std::string text;
    if (i % 2 == 0) {
      nlohmann::json j = j0;
      j[keys[rng() % keys.size()]] = values[rng() % std::size(values)];
      text = j.dump();
    } else {
      text = base;
      text[rng() % text.size()] = static_cast<char>(rng() % 256);
      text = text.substr(0, rng() % (text.size() + 1));
    }
    auto c = ParseConfigJson(text);
    if (c.ok()) {
      EXPECT_TRUE(c->Validate().ok());
    } else {
      EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << text;
    }
  }
}

}  // namespace
}  // namespace rlpost
