#include "rollout/engine.h"

#include <gtest/gtest.h>
#include <torch/utils.h>

#include "model/moe_transformer.h"

namespace rlpost {
namespace {

constexpr int kEos = 2;

ModelShape TinyShape() {
  ModelShape s;
  s.n_layers = 2;
  s.d_model = 32;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.n_experts = 4;
  s.top_k = 2;
  s.expert_hidden = 32;
  s.max_seq_len = 40;
  s.init_seed = 5;
  return s;
}

std::unique_ptr<PolicyEngine> MakeEngine() {
  auto e = PolicyEngine::Create(TinyShape(), 24);
  EXPECT_TRUE(e.ok());
  return std::move(*e);
}

TEST(EngineTest, SeededGenerationIsReproducibleAloneAndInBatch) {
  auto engine = MakeEngine();
  SamplingOptions o;
  o.max_new_tokens = 12;
  std::vector<std::vector<int>> prompts = {{1, 5, 6}, {1, 7, 8, 9, 10}, {1, 4}};
  std::vector<uint64_t> seeds = {11, 22, 33};
  auto batch = engine->Generate(prompts, seeds, o, kEos);
  ASSERT_TRUE(batch.ok()) << batch.status();
  auto again = engine->Generate(prompts, seeds, o, kEos);
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ((*batch)[i].tokens, (*again)[i].tokens);
    auto alone = engine->Generate({prompts[i]}, {seeds[i]}, o, kEos);
    ASSERT_TRUE(alone.ok());
    EXPECT_EQ((*alone)[0].tokens, (*batch)[i].tokens) << "row " << i;
    for (size_t j = 0; j < (*alone)[0].logprobs.size(); ++j) {
      EXPECT_NEAR((*alone)[0].logprobs[j], (*batch)[i].logprobs[j], 1e-4);
    }
  }
}

TEST(EngineTest, LogprobsEqualTeacherForcedLogprobs) {
  auto engine = MakeEngine();
  SamplingOptions o;
  o.temperature = 0.8;
  o.max_new_tokens = 15;
  std::vector<int> prompt = {1, 9, 3, 12};
  auto gen = engine->Generate({prompt}, {99}, o, kEos);
  ASSERT_TRUE(gen.ok());
  const Generation& g = (*gen)[0];
  ASSERT_FALSE(g.tokens.empty());

  MoeTransformer model(ModelConfig::FromShape(TinyShape(), 24));
  torch::NoGradGuard no_grad;
  std::vector<int> seq = prompt;
  seq.insert(seq.end(), g.tokens.begin(), g.tokens.end());
  PaddedBatch b = LeftPad({seq});
  at::Tensor logp = at::log_softmax(
      model->Forward(b.tokens, b.positions, b.mask, nullptr).logits[0] / 0.8, -1);
  for (size_t j = 0; j < g.tokens.size(); ++j) {
    float expected = logp[prompt.size() - 1 + j][g.tokens[j]].item<float>();
    EXPECT_NEAR(g.logprobs[j], expected, 1e-4) << "token " << j;
  }
}

TEST(EngineTest, StopsAtEosAndRespectsBudget) {
  auto engine = MakeEngine();
  SamplingOptions o;
  o.max_new_tokens = 5;
  auto gen = engine->Generate({{1, 3}}, {1}, o, kEos);
  ASSERT_TRUE(gen.ok());
  EXPECT_LE((*gen)[0].tokens.size(), 5u);
  // Make every token a stop token: generation ends after one token.
  o.stop_token_ids.clear();
  for (int i = 0; i < 24; ++i) o.stop_token_ids.push_back(i);
  gen = engine->Generate({{1, 3}}, {1}, o, kEos);
  ASSERT_TRUE(gen.ok());
  EXPECT_EQ((*gen)[0].tokens.size(), 1u);
  EXPECT_EQ((*gen)[0].finish, FinishKind::kStop);
}

TEST(EngineTest, RejectsBadPrompts) {
  auto engine = MakeEngine();
  SamplingOptions o;
  EXPECT_EQ(engine->Generate({{1, 99}}, {1}, o, kEos).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<int> too_long(40, 3);
  EXPECT_EQ(engine->Generate({too_long}, {1}, o, kEos).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EngineTest, WeightLoadSwapsVersionAndOutputs) {
  auto engine = MakeEngine();
  ModelShape other = TinyShape();
  other.init_seed = 77;
  auto donor = PolicyEngine::Create(other, 24);
  ASSERT_TRUE(donor.ok());
  SamplingOptions o;
  o.temperature = 0;
  o.max_new_tokens = 10;
  auto before = engine->Generate({{1, 5}}, {1}, o, kEos);
  ASSERT_TRUE(engine->LoadWeights(4, (*donor)->ExportWeights()).ok());
  EXPECT_EQ(engine->weight_version(), 4);
  auto after = engine->Generate({{1, 5}}, {1}, o, kEos);
  auto donor_out = (*donor)->Generate({{1, 5}}, {1}, o, kEos);
  EXPECT_EQ((*after)[0].tokens, (*donor_out)[0].tokens);
  EXPECT_EQ((*after)[0].weight_version, 4);
  auto bad = (*donor)->ExportWeights();
  bad.pop_back();
  EXPECT_FALSE(engine->LoadWeights(5, bad).ok());
  EXPECT_EQ(engine->weight_version(), 4);
}

}  // namespace
}  // namespace rlpost
