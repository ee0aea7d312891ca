#include "model/moe_transformer.h"

#include <gtest/gtest.h>
#include <torch/types.h>
#include <torch/nn/utils/clip_grad.h>

namespace rlpost {
namespace {

ModelConfig TinyConfig() {
  ModelConfig c;
  c.vocab_size = 20;
  c.n_layers = 2;
  c.d_model = 32;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.n_experts = 4;
  c.top_k = 2;
  c.expert_hidden = 48;
  c.max_seq_len = 32;
  c.init_seed = 3;
  return c;
}

at::Tensor FullLogits(MoeTransformer& model, const std::vector<int>& seq) {
  PaddedBatch b = LeftPad({seq});
  return model->Forward(b.tokens, b.positions, b.mask, nullptr).logits[0];
}

TEST(MoeTransformerTest, SameSeedSameWeights) {
  MoeTransformer a(TinyConfig()), b(TinyConfig());
  auto wa = a->ExportWeights(), wb = b->ExportWeights();
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i) EXPECT_EQ(wa[i].bytes, wb[i].bytes) << wa[i].name;
  ModelConfig other = TinyConfig();
  other.init_seed = 4;
  MoeTransformer c(other);
  EXPECT_NE(c->ExportWeights()[0].bytes, wa[0].bytes);
}

TEST(MoeTransformerTest, HuggingFaceParameterNames) {
  MoeTransformer m(TinyConfig());
  std::vector<std::string> names;
  for (const RawTensor& t : m->ExportWeights()) names.push_back(t.name);
  auto has = [&](const std::string& n) {
    return std::find(names.begin(), names.end(), n) != names.end();
  };
  EXPECT_TRUE(has("model.embed_tokens.weight"));
  EXPECT_TRUE(has("model.layers.1.self_attn.q_proj.weight"));
  EXPECT_TRUE(has("model.layers.0.mlp.gate.weight"));
  EXPECT_TRUE(has("model.layers.0.mlp.experts.3.down_proj.weight"));
  EXPECT_TRUE(has("model.layers.0.post_attention_layernorm.weight"));
  EXPECT_TRUE(has("model.norm.weight"));
  EXPECT_TRUE(has("lm_head.weight"));
}

TEST(MoeTransformerTest, KvCacheDecodingMatchesFullForward) {
  torch::NoGradGuard no_grad;
  MoeTransformer m(TinyConfig());
  std::vector<int> seq = {1, 5, 7, 9, 3, 11, 4, 8, 12, 6};
  at::Tensor full = FullLogits(m, seq);
  // Prefill 4 tokens, then one token at a time.
  KvCache cache = m->NewCache(1, 16);
  std::vector<int> prefix(seq.begin(), seq.begin() + 4);
  PaddedBatch b = LeftPad({prefix});
  at::Tensor mask = b.mask;
  at::Tensor logits = m->Forward(b.tokens, b.positions, mask, &cache).logits[0];
  EXPECT_TRUE(at::allclose(logits, full.narrow(0, 0, 4), 1e-5, 1e-5));
  for (size_t i = 4; i < seq.size(); ++i) {
    at::Tensor tok = at::full({1, 1}, seq[i], at::kLong);
    at::Tensor pos = at::full({1, 1}, static_cast<int64_t>(i), at::kLong);
    mask = at::cat({mask, at::ones({1, 1}, at::kBool)}, 1);
    at::Tensor step = m->Forward(tok, pos, mask, &cache).logits[0][0];
    EXPECT_TRUE(at::allclose(step, full[i], 1e-5, 1e-5)) << "position " << i;
  }
}

TEST(MoeTransformerTest, PaddedBatchMatchesEachAlone) {
  torch::NoGradGuard no_grad;
  MoeTransformer m(TinyConfig());
  std::vector<std::vector<int>> seqs = {{1, 4, 5}, {1, 9, 8, 7, 6, 5}, {1, 2}};
  PaddedBatch b = LeftPad(seqs);
  at::Tensor logits = m->Forward(b.tokens, b.positions, b.mask, nullptr).logits;
  int64_t t = b.tokens.size(1);
  for (size_t i = 0; i < seqs.size(); ++i) {
    at::Tensor alone = FullLogits(m, seqs[i]);
    int64_t len = static_cast<int64_t>(seqs[i].size());
    EXPECT_TRUE(at::allclose(logits[i].narrow(0, t - len, len), alone, 1e-5, 1e-5)) << i;
  }
}

TEST(MoeTransformerTest, ImportExportRoundTripAndRejectsBadShapes) {
  MoeTransformer a(TinyConfig());
  ModelConfig other = TinyConfig();
  other.init_seed = 99;
  MoeTransformer b(other);
  auto weights = a->ExportWeights();
  ASSERT_TRUE(b->ImportWeights(weights).ok());
  auto back = b->ExportWeights();
  for (size_t i = 0; i < weights.size(); ++i) EXPECT_EQ(back[i].bytes, weights[i].bytes);

  auto broken = weights;
  broken[0].shape = {1, 2};
  absl::Status s = b->ImportWeights(broken);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(broken[0].name), std::string::npos);
  broken = weights;
  broken.pop_back();
  EXPECT_EQ(b->ImportWeights(broken).code(), absl::StatusCode::kInvalidArgument);
}

TEST(MoeTransformerTest, GradientsReachEveryExpertAndAuxLoss) {
  MoeTransformer m(TinyConfig());
  std::vector<std::vector<int>> seqs;
  for (int i = 0; i < 8; ++i) seqs.push_back({1, 3 + i, 4 + i, 5 + i, 6, 7, 8});
  PaddedBatch b = LeftPad(seqs);
  ForwardOutput out = m->Forward(b.tokens, b.positions, b.mask, nullptr);
  EXPECT_GT(out.aux_loss.item<float>(), 0.0f);
  (out.logits.logsumexp(-1).mean() + out.aux_loss).backward();
  for (const auto& p : m->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
  }
}

}  // namespace
}  // namespace rlpost
