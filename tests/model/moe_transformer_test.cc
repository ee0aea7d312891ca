#include "model/moe_transformer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/types.h>

#include <algorithm>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace rlpost {
namespace {

using ::testing::HasSubstr;

ModelConfig TinyConfig(const std::string& type = "qwen3_moe") {
  ModelConfig c;
  c.model_type = type;
  c.vocab_size = 20;
  c.n_layers = 2;
  c.d_model = 32;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.n_experts = 4;
  c.top_k = 2;
  c.expert_hidden = 48;
  c.intermediate_size = 40;
  c.max_seq_len = 32;
  c.init_seed = 3;
  c.qk_norm = QkNorm::kNone;
  if (type == "qwen3_moe") {
    c.qk_norm = QkNorm::kPerHead;
    c.explicit_head_dim = 12;  // head_dim need not be d_model / heads
    c.norm_topk_prob = false;
  } else if (type == "qwen2_moe") {
    c.qkv_bias = true;
    c.shared_expert_hidden = 24;
    c.shared_expert_gate = true;
    c.norm_topk_prob = false;
    c.decoder_sparse_step = 2;  // layer 0 dense, layer 1 MoE
  } else if (type == "olmoe") {
    c.qk_norm = QkNorm::kFull;
  } else if (type == "rlpost_moe") {
    c.n_layers = 3;
    c.first_k_dense = 1;
    c.shared_expert_hidden = 16;  // DeepSeek style: ungated
    c.tie_word_embeddings = true;
    c.mtp_layers = 1;
  }
  return c;
}

const char* const kTypes[] = {"qwen3_moe", "qwen2_moe", "mixtral", "olmoe", "rlpost_moe"};

// Random small values in biases and norms so that those paths are exercised.
void Perturb(MoeTransformer& m, uint64_t seed) {
  torch::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& p : m->named_parameters()) {
    if (absl::EndsWith(p.key(), ".bias") || absl::EndsWith(p.key(), "norm.weight")) {
      p.value().add_(at::empty_like(p.value()).normal_(0.0, 0.1, gen));
    }
  }
}

at::Tensor FullLogits(MoeTransformer& m, const std::vector<int>& seq) {
  PaddedBatch b = LeftPad({seq});
  return m->Forward(b.tokens, b.positions, b.mask, nullptr).logits[0];
}

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

std::vector<std::string> Names(MoeTransformer& m) {
  std::vector<std::string> names;
  for (const RawTensor& t : m->ExportWeights()) names.push_back(t.name);
  return names;
}

class EveryFamily : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryFamily, KvCacheDecodingMatchesFullForward) {
  torch::NoGradGuard no_grad;
  MoeTransformer m(TinyConfig(GetParam()));
  Perturb(m, 11);
  std::vector<int> seq = {1, 5, 7, 9, 3, 11, 4, 8, 12, 6, 19, 2};
  at::Tensor full = FullLogits(m, seq);
  KvCache cache = m->NewCache(1, 16);
  PaddedBatch b = LeftPad({std::vector<int>(seq.begin(), seq.begin() + 4)});
  at::Tensor mask = b.mask;
  at::Tensor prefill = m->Forward(b.tokens, b.positions, mask, &cache).logits[0];
  EXPECT_LT(MaxAbsDiff(prefill, full.narrow(0, 0, 4)), 1e-5);
  for (size_t i = 4; i < seq.size(); ++i) {
    at::Tensor tok = at::full({1, 1}, seq[i], at::kLong);
    at::Tensor pos = at::full({1, 1}, static_cast<int64_t>(i), at::kLong);
    mask = at::cat({mask, at::ones({1, 1}, at::kBool)}, 1);
    at::Tensor step = m->Forward(tok, pos, mask, &cache).logits[0][0];
    EXPECT_LT(MaxAbsDiff(step, full[i]), 1e-5) << "position " << i;
  }
  EXPECT_EQ(cache.length, static_cast<int64_t>(seq.size()));
}

TEST_P(EveryFamily, PaddedBatchMatchesEachAlone) {
  torch::NoGradGuard no_grad;
  MoeTransformer m(TinyConfig(GetParam()));
  Perturb(m, 12);
  std::vector<std::vector<int>> seqs = {{1, 4, 5}, {1, 9, 8, 7, 6, 5, 3, 17}, {1, 2}, {3}};
  PaddedBatch b = LeftPad(seqs);
  at::Tensor logits = m->Forward(b.tokens, b.positions, b.mask, nullptr).logits;
  int64_t t = b.tokens.size(1);
  for (size_t i = 0; i < seqs.size(); ++i) {
    at::Tensor alone = FullLogits(m, seqs[i]);
    int64_t len = static_cast<int64_t>(seqs[i].size());
    EXPECT_LT(MaxAbsDiff(logits[i].narrow(0, t - len, len), alone), 1e-5) << i;
  }
}

TEST_P(EveryFamily, ExportImportRoundTripIsBitExact) {
  MoeTransformer a(TinyConfig(GetParam()));
  Perturb(a, 13);
  ModelConfig other = TinyConfig(GetParam());
  other.init_seed = 99;
  MoeTransformer b(other);
  auto weights = a->ExportWeights();
  ASSERT_TRUE(b->ImportWeights(weights).ok());
  auto back = b->ExportWeights();
  ASSERT_EQ(back.size(), weights.size());
  for (size_t i = 0; i < weights.size(); ++i) EXPECT_EQ(back[i].bytes, weights[i].bytes);
}

TEST_P(EveryFamily, RouterReplayReproducesTheRoutedForwardExactly) {
  torch::NoGradGuard no_grad;
  MoeTransformer m(TinyConfig(GetParam()));
  PaddedBatch b = LeftPad({{1, 4, 5, 6, 7}, {1, 9, 8}});
  ForwardOptions record;
  record.record_routing = true;
  ForwardOutput routed = m->Forward(b.tokens, b.positions, b.mask, record);
  std::vector<at::Tensor> ids;
  for (const RouterRecord& r : routed.routing) ids.push_back(r.expert_ids);
  ForwardOptions replay;
  replay.replay_expert_ids = &ids;
  ForwardOutput again = m->Forward(b.tokens, b.positions, b.mask, replay);
  EXPECT_TRUE(at::equal(routed.logits, again.logits));
  // Replaying other experts changes the result.
  for (at::Tensor& t : ids) {
    if (t.defined()) t = (t + 1).remainder(m->config().n_experts);
  }
  ForwardOutput other = m->Forward(b.tokens, b.positions, b.mask, replay);
  EXPECT_GT(MaxAbsDiff(other.logits, routed.logits), 1e-4);
}

// Partial replay: rows outside the mask route as usual, so garbage there
// changes nothing, while rows inside follow the given experts.
TEST_P(EveryFamily, RouterReplayAppliesOnlyToMaskedTokens) {
  torch::NoGradGuard no_grad;
  MoeTransformer m(TinyConfig(GetParam()));
  PaddedBatch b = LeftPad({{1, 4, 5, 6, 7}, {1, 9, 8}});
  ForwardOptions record;
  record.record_routing = true;
  ForwardOutput routed = m->Forward(b.tokens, b.positions, b.mask, record);
  const int64_t n = b.tokens.numel();
  at::Tensor rows = at::zeros({n}, at::kBool);
  rows.narrow(0, 2, 3).fill_(true);  // row 0, columns 2..4
  std::vector<at::Tensor> ids;
  for (const RouterRecord& r : routed.routing) {
    if (!r.expert_ids.defined()) {
      ids.emplace_back();
      continue;
    }
    // Recorded experts on the masked rows, shifted (wrong) experts elsewhere.
    at::Tensor wrong = (r.expert_ids + 1).remainder(m->config().n_experts);
    ids.push_back(at::where(rows.unsqueeze(1), r.expert_ids, wrong));
  }
  ForwardOptions replay;
  replay.replay_expert_ids = &ids;
  replay.replay_token_mask = &rows;
  EXPECT_TRUE(at::equal(m->Forward(b.tokens, b.positions, b.mask, replay).logits, routed.logits));
  // Masking every row makes the wrong experts count.
  at::Tensor all = at::ones({n}, at::kBool);
  replay.replay_token_mask = &all;
  EXPECT_GT(MaxAbsDiff(m->Forward(b.tokens, b.positions, b.mask, replay).logits, routed.logits),
            1e-4);
}

INSTANTIATE_TEST_SUITE_P(Families, EveryFamily,
                         ::testing::Values("qwen3_moe", "qwen2_moe", "mixtral", "olmoe",
                                           "rlpost_moe"));

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

TEST(MoeTransformerTest, HuggingFaceParameterNamesPerFamily) {
  auto has = [](const std::vector<std::string>& names, const std::string& n) {
    return std::find(names.begin(), names.end(), n) != names.end();
  };
  MoeTransformer qwen3(TinyConfig("qwen3_moe"));
  auto n = Names(qwen3);
  EXPECT_TRUE(has(n, "model.embed_tokens.weight"));
  EXPECT_TRUE(has(n, "model.layers.1.self_attn.q_proj.weight"));
  EXPECT_TRUE(has(n, "model.layers.1.self_attn.q_norm.weight"));
  EXPECT_TRUE(has(n, "model.layers.0.mlp.gate.weight"));
  EXPECT_TRUE(has(n, "model.layers.0.mlp.experts.3.down_proj.weight"));
  EXPECT_TRUE(has(n, "model.layers.0.post_attention_layernorm.weight"));
  EXPECT_TRUE(has(n, "model.norm.weight"));
  EXPECT_TRUE(has(n, "lm_head.weight"));

  MoeTransformer qwen2(TinyConfig("qwen2_moe"));
  n = Names(qwen2);
  EXPECT_TRUE(has(n, "model.layers.0.mlp.gate_proj.weight"));  // dense layer
  EXPECT_TRUE(has(n, "model.layers.1.mlp.shared_expert.up_proj.weight"));
  EXPECT_TRUE(has(n, "model.layers.1.mlp.shared_expert_gate.weight"));
  EXPECT_TRUE(has(n, "model.layers.1.self_attn.k_proj.bias"));
  EXPECT_FALSE(has(n, "model.layers.1.self_attn.o_proj.bias"));

  MoeTransformer mixtral(TinyConfig("mixtral"));
  n = Names(mixtral);
  EXPECT_TRUE(has(n, "model.layers.0.block_sparse_moe.gate.weight"));
  EXPECT_TRUE(has(n, "model.layers.0.block_sparse_moe.experts.2.w1.weight"));
  EXPECT_TRUE(has(n, "model.layers.0.block_sparse_moe.experts.2.w2.weight"));
  EXPECT_TRUE(has(n, "model.layers.0.block_sparse_moe.experts.2.w3.weight"));

  MoeTransformer deep(TinyConfig("rlpost_moe"));
  n = Names(deep);
  EXPECT_FALSE(has(n, "lm_head.weight"));  // tied
  EXPECT_TRUE(has(n, "model.layers.0.mlp.down_proj.weight"));
  EXPECT_TRUE(has(n, "model.layers.3.eh_proj.weight"));
  EXPECT_TRUE(has(n, "model.layers.3.enorm.weight"));
  EXPECT_TRUE(has(n, "model.layers.3.shared_head.norm.weight"));
  EXPECT_TRUE(has(n, "model.layers.3.mlp.experts.0.gate_proj.weight"));
}

TEST(MoeTransformerTest, OlmoeNormsTheWholeProjection) {
  MoeTransformer m(TinyConfig("olmoe"));
  for (const RawTensor& t : m->ExportWeights()) {
    if (t.name == "model.layers.0.self_attn.q_norm.weight") EXPECT_EQ(t.shape[0], 32);
    if (t.name == "model.layers.0.self_attn.k_norm.weight") EXPECT_EQ(t.shape[0], 16);
  }
}

TEST(MoeTransformerTest, ImportNamesTheBadTensor) {
  MoeTransformer a(TinyConfig());
  auto weights = a->ExportWeights();
  auto broken = weights;
  broken[3].shape = {1, 2};
  absl::Status s = a->ImportWeights(broken);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr(weights[3].name));
  EXPECT_THAT(std::string(s.message()), HasSubstr("shape"));

  broken = weights;
  std::string dropped = broken.back().name;
  broken.pop_back();
  s = a->ImportWeights(broken);
  EXPECT_THAT(std::string(s.message()), HasSubstr(dropped));
  EXPECT_THAT(std::string(s.message()), HasSubstr("missing"));

  broken = weights;
  broken.push_back(weights[0]);
  broken.back().name = "model.layers.7.mlp.gate.weight";
  s = a->ImportWeights(broken);
  EXPECT_THAT(std::string(s.message()), HasSubstr("unexpected tensor 'model.layers.7.mlp.gate.weight'"));

  // Nothing changed by the failed imports.
  auto after = a->ExportWeights();
  for (size_t i = 0; i < weights.size(); ++i) EXPECT_EQ(after[i].bytes, weights[i].bytes);
}

TEST(MoeTransformerTest, Bf16ExportRoundsAndImports) {
  MoeTransformer a(TinyConfig());
  auto bf = a->ExportWeights(RawDType::kBFloat16);
  auto fp = a->ExportWeights();
  ASSERT_EQ(bf[0].bytes.size() * 2, fp[0].bytes.size());
  ModelConfig other = TinyConfig();
  other.init_seed = 5;
  MoeTransformer b(other);
  ASSERT_TRUE(b->ImportWeights(bf).ok());
  auto back = b->ExportWeights(RawDType::kBFloat16);
  for (size_t i = 0; i < bf.size(); ++i) EXPECT_EQ(back[i].bytes, bf[i].bytes) << bf[i].name;
}

TEST(MoeTransformerTest, SamplingSkipsRouterLossesWithoutChangingLogits) {
  torch::NoGradGuard no_grad;
  MoeTransformer m(TinyConfig());
  PaddedBatch b = LeftPad({{1, 4, 5, 6}, {2, 9}});
  ForwardOutput with = m->Forward(b.tokens, b.positions, b.mask, ForwardOptions{});
  ForwardOptions sampling;
  sampling.router_losses = false;
  ForwardOutput without = m->Forward(b.tokens, b.positions, b.mask, sampling);
  EXPECT_TRUE(at::equal(with.logits, without.logits));
  EXPECT_GT(with.aux_loss.item<double>(), 0.0);
  EXPECT_EQ(without.aux_loss.item<double>(), 0.0);
  EXPECT_EQ(without.z_loss.item<double>(), 0.0);
}

TEST(MoeTransformerTest, TokenIdsOutOfRangeAreAnError) {
  MoeTransformer m(TinyConfig());
  PaddedBatch b = LeftPad({{1, 20, 3}});
  absl::Status s = m->CheckTokenIds(b.tokens);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("token id 20"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("vocab_size is 20"));
  EXPECT_THROW(m->Forward(b.tokens, b.positions, b.mask, nullptr), c10::Error);
  b = LeftPad({{1, -1}});
  EXPECT_THAT(std::string(m->CheckTokenIds(b.tokens).message()), HasSubstr("token id -1"));
}

TEST(MoeTransformerTest, GradientsReachEveryParameter) {
  for (const char* type : kTypes) {
    MoeTransformer m(TinyConfig(type));
    std::vector<std::vector<int>> seqs;
    for (int i = 0; i < 8; ++i) seqs.push_back({1, 3 + i, 4 + i, 5 + i, 6, 7, 8});
    PaddedBatch b = LeftPad(seqs);
    ForwardOutput out = m->Forward(b.tokens, b.positions, b.mask, nullptr);
    at::Tensor loss = out.logits.logsumexp(-1).mean() + out.aux_loss + out.z_loss;
    if (m->config().mtp_layers > 0) {
      int64_t t = b.tokens.size(1);
      at::Tensor mtp = m->MtpForward(out.hidden.narrow(1, 0, t - 1),
                                     b.tokens.narrow(1, 1, t - 1),
                                     b.positions.narrow(1, 0, t - 1),
                                     b.mask.narrow(1, 1, t - 1), nullptr);
      loss = loss + mtp.logsumexp(-1).mean();
    }
    loss.backward();
    for (const auto& p : m->named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << type << " " << p.key();
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << type << " " << p.key();
    }
  }
}

TEST(MoeTransformerTest, MtpCachedDecodingMatchesFullForward) {
  torch::NoGradGuard no_grad;
  MoeTransformer m(TinyConfig("rlpost_moe"));
  std::vector<int> seq = {1, 5, 7, 9, 3, 11, 4, 8, 12, 6};
  int64_t n = static_cast<int64_t>(seq.size());
  PaddedBatch b = LeftPad({seq});
  ForwardOutput out = m->Forward(b.tokens, b.positions, b.mask, nullptr);
  at::Tensor full = m->MtpForward(out.hidden.narrow(1, 0, n - 1), b.tokens.narrow(1, 1, n - 1),
                                  b.positions.narrow(1, 0, n - 1), b.mask.narrow(1, 0, n - 1),
                                  nullptr)[0];
  KvCache cache = m->NewMtpCache(1, n);
  at::Tensor mask = at::zeros({1, 0}, at::kBool);
  for (int64_t i = 0; i + 1 < n; ++i) {
    mask = at::cat({mask, at::ones({1, 1}, at::kBool)}, 1);
    at::Tensor step = m->MtpForward(out.hidden.narrow(1, i, 1), b.tokens.narrow(1, i + 1, 1),
                                    b.positions.narrow(1, i, 1), mask, &cache)[0][0];
    EXPECT_LT(MaxAbsDiff(step, full[i]), 1e-5) << i;
  }
}

// Float64 finite differences against autograd on a tiny config, with every
// optional piece switched on.
TEST(MoeTransformerTest, GradientMatchesFiniteDifferencesInFloat64) {
  ModelConfig c = TinyConfig("rlpost_moe");
  c.d_model = 16;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.expert_hidden = 8;
  c.intermediate_size = 12;
  c.shared_expert_hidden = 8;
  c.shared_expert_gate = true;
  c.qk_norm = QkNorm::kPerHead;
  c.qkv_bias = true;
  c.vocab_size = 11;
  MoeTransformer m(c);
  m->to(at::kDouble);
  Perturb(m, 21);
  PaddedBatch b = LeftPad({{1, 4, 5, 6, 2}, {3, 9, 8}});
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
  at::Tensor proj = at::empty({2, 5, 11}, at::kDouble).normal_(0.0, 1.0, gen);
  auto loss_fn = [&]() {
    ForwardOutput out = m->Forward(b.tokens, b.positions, b.mask, nullptr);
    at::Tensor mtp = m->MtpForward(out.hidden.narrow(1, 0, 4), b.tokens.narrow(1, 1, 4),
                                   b.positions.narrow(1, 0, 4), b.mask.narrow(1, 1, 4), nullptr);
    return (out.logits * proj).sum() + 0.3 * out.aux_loss + 0.2 * out.z_loss +
           (mtp * proj.narrow(1, 0, 4)).sum();
  };
  m->zero_grad();
  loss_fn().backward();
  int checked = 0;
  for (auto& p : m->named_parameters()) {
    at::Tensor w = p.value();
    at::Tensor g = w.grad().reshape({-1});
    at::Tensor flat = w.detach().view({-1});
    for (int64_t idx : {int64_t{0}, flat.numel() / 2, flat.numel() - 1}) {
      const double h = 1e-6;
      double saved = flat[idx].item<double>();
      double plus, minus;
      {
        torch::NoGradGuard no_grad;
        flat[idx].fill_(saved + h);
        plus = loss_fn().item<double>();
        flat[idx].fill_(saved - h);
        minus = loss_fn().item<double>();
        flat[idx].fill_(saved);
      }
      double numeric = (plus - minus) / (2 * h);
      double analytic = g[idx].item<double>();
      EXPECT_NEAR(analytic, numeric, 1e-6 + 1e-5 * std::abs(numeric)) << p.key() << "[" << idx << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 60);
}

// The MoE layer alone on hand-computed routing.
TEST(MoeFeedForwardTest, RoutingWeightsAndLossesOnAHandComputedCase) {
  ModelConfig c;
  c.d_model = 4;
  c.n_experts = 4;
  c.top_k = 2;
  c.expert_hidden = 3;
  for (bool normalize : {true, false}) {
    c.norm_topk_prob = normalize;
    MoeFeedForward moe(c);
    torch::NoGradGuard no_grad;
    // Row r of x is e_r, so router logits of token r are column r of W.
    at::Tensor w = at::zeros({4, 4});
    for (int e = 0; e < 4; ++e) {
      w[e][0] = std::log(e + 1.0);   // token 0: probs .1 .2 .3 .4
      w[e][1] = std::log(e + 1.0);   // token 1: the same
      w[e][2] = e == 0 ? 50.0 : 0.0; // token 2 is padding: must not count
    }
    moe->named_parameters()["gate.weight"].copy_(w);
    at::Tensor x = at::eye(4).narrow(0, 0, 3);
    at::Tensor aux = at::zeros({}), z = at::zeros({});
    RouterRecord record;
    RoutingContext ctx;
    ctx.token_mask = at::tensor({1, 1, 0}).to(at::kBool);
    ctx.aux_loss = &aux;
    ctx.z_loss = &z;
    ctx.record = &record;
    moe->forward(x, ctx);
    EXPECT_EQ(record.expert_ids[0][0].item<int64_t>(), 3);
    EXPECT_EQ(record.expert_ids[0][1].item<int64_t>(), 2);
    double w0 = record.weights[0][0].item<double>(), w1 = record.weights[0][1].item<double>();
    if (normalize) {
      EXPECT_NEAR(w0, 0.4 / 0.7, 1e-6);
      EXPECT_NEAR(w1, 0.3 / 0.7, 1e-6);
    } else {
      EXPECT_NEAR(w0, 0.4, 1e-6);
      EXPECT_NEAR(w1, 0.3, 1e-6);
    }
    // f = (0, 0, .5, .5), P = (.1, .2, .3, .4): 4 * (.15 + .2) = 1.4.
    EXPECT_NEAR(aux.item<double>(), 1.4, 1e-6);
    // logsumexp(log 1..4) = log 10.
    EXPECT_NEAR(z.item<double>(), std::pow(std::log(10.0), 2), 1e-5);
  }
}

TEST(MoeFeedForwardTest, BalancedRoutingHasAuxLossOne) {
  ModelConfig c;
  c.d_model = 4;
  c.n_experts = 4;
  c.top_k = 1;
  c.expert_hidden = 3;
  MoeFeedForward moe(c);
  torch::NoGradGuard no_grad;
  moe->named_parameters()["gate.weight"].copy_(at::eye(4) * 3.0);
  at::Tensor aux = at::zeros({});
  RoutingContext ctx;
  ctx.aux_loss = &aux;
  moe->forward(at::eye(4), ctx);  // token r goes to expert r
  EXPECT_NEAR(aux.item<double>(), 1.0, 1e-6);
}

TEST(MoeFeedForwardTest, GroupedExpertsEqualPerTokenReference) {
  ModelConfig c;
  c.d_model = 8;
  c.n_experts = 5;
  c.top_k = 2;
  c.expert_hidden = 6;
  c.shared_expert_hidden = 4;
  c.shared_expert_gate = true;
  MoeFeedForward moe(c);
  torch::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(8);
  for (auto& p : moe->parameters()) p.normal_(0.0, 0.5, gen);
  at::Tensor x = at::empty({13, 8}).normal_(0.0, 1.0, gen);
  RouterRecord record;
  RoutingContext ctx;
  ctx.record = &record;
  at::Tensor grouped = moe->forward(x, ctx);
  auto params = moe->named_parameters();
  auto expert = [&](const std::string& prefix, const at::Tensor& row) {
    at::Tensor g = at::matmul(params[prefix + "gate_proj.weight"], row);
    at::Tensor u = at::matmul(params[prefix + "up_proj.weight"], row);
    return at::matmul(params[prefix + "down_proj.weight"], at::silu(g) * u);
  };
  for (int64_t i = 0; i < 13; ++i) {
    at::Tensor row = x[i];
    at::Tensor want = at::sigmoid(at::dot(params["shared_expert_gate.weight"][0], row)) *
                      expert("shared_expert.", row);
    for (int64_t j = 0; j < 2; ++j) {
      int64_t e = record.expert_ids[i][j].item<int64_t>();
      want = want + record.weights[i][j] * expert(absl::StrCat("experts.", e, "."), row);
    }
    EXPECT_LT(MaxAbsDiff(grouped[i], want), 1e-5) << i;
  }
}

}  // namespace
}  // namespace rlpost
