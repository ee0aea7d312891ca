#include "rollout/engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "model/moe_transformer.h"

namespace rlpost {
namespace {

using ::testing::HasSubstr;

ModelConfig TinyConfig(int64_t max_seq_len = 160) {
  ModelConfig c;
  c.model_type = "rlpost_moe";
  c.vocab_size = 32;
  c.n_layers = 2;
  c.d_model = 32;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.n_experts = 4;
  c.top_k = 2;
  c.expert_hidden = 32;
  c.intermediate_size = 48;
  c.max_seq_len = max_seq_len;
  c.mtp_layers = 1;
  c.init_seed = 5;
  return c;
}

EngineOptions Options(DrafterKind drafter, bool float64 = true, int k = 4) {
  EngineOptions o;
  o.background_thread = false;
  o.float64 = float64;
  o.max_batch = 64;
  o.kv_block_size = 8;
  o.speculation.drafter = drafter;
  o.speculation.max_draft_tokens = k;
  o.speculation.adaptive = false;
  return o;
}

std::unique_ptr<RolloutEngine> MakeEngine(const EngineOptions& o,
                                          const ModelConfig& c = TinyConfig()) {
  auto e = RolloutEngine::Create(c, o);
  EXPECT_TRUE(e.ok()) << e.status();
  return std::move(*e);
}

std::vector<int> Prompt(int len, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int> p;
  for (int i = 0; i < len; ++i) p.push_back(static_cast<int>(rng() % 32));
  return p;
}

GenerationRequest Request(std::vector<int> prompt, double temperature, int max_new,
                          uint64_t seed = 1, int n = 1) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.sampling.temperature = temperature;
  r.sampling.max_new_tokens = max_new;
  r.seed = seed;
  r.n = n;
  return r;
}

// Submits every request, steps until idle, returns outputs per request.
std::vector<std::vector<SampleOutput>> RunAll(RolloutEngine* e,
                                              const std::vector<GenerationRequest>& reqs) {
  std::vector<std::vector<SampleOutput>> out(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    out[i].resize(static_cast<size_t>(reqs[i].n));
    auto id = e->Submit(reqs[i], [&out, i](const SampleOutput& s) { out[i][s.sample_index] = s; });
    EXPECT_TRUE(id.ok()) << id.status();
  }
  e->RunUntilIdle();
  return out;
}

// Loads the policy's own weights (MTP block included) as the draft model.
void UsePolicyAsDraft(RolloutEngine* e) {
  ASSERT_TRUE(e->LoadDraftModel(e->config(), e->ExportWeights(), 1).ok());
}

TEST(RolloutEngineTest, GreedySpeculativeEqualsPlainForEveryDrafter) {
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 50; ++i) reqs.push_back(Request(Prompt(64, 100 + i), 0.0, 40));
  auto plain = MakeEngine(Options(DrafterKind::kNone));
  std::vector<std::vector<SampleOutput>> want = RunAll(plain.get(), reqs);
  for (DrafterKind d : {DrafterKind::kNgram, DrafterKind::kMtp, DrafterKind::kDraftModel}) {
    SCOPED_TRACE(DrafterName(d));
    auto spec = MakeEngine(Options(d));
    if (d == DrafterKind::kDraftModel) {
      // A different (smaller, differently seeded) model: real rejections.
      ModelConfig small = TinyConfig();
      small.n_layers = 1;
      small.init_seed = 77;
      ASSERT_TRUE(spec->LoadDraftModel(small, {}, 3).ok());
    }
    std::vector<std::vector<SampleOutput>> got = RunAll(spec.get(), reqs);
    for (size_t i = 0; i < reqs.size(); ++i) {
      ASSERT_EQ(got[i][0].tokens, want[i][0].tokens) << "prompt " << i;
      EXPECT_EQ(got[i][0].finish, FinishKind::kLength);
    }
    EngineStats st = spec->Stats();
    EXPECT_GT(st.drafted_tokens, 0);
    if (d == DrafterKind::kNgram) EXPECT_GT(st.accepted_tokens, 0);
    EXPECT_EQ(st.kv_blocks_free, st.kv_blocks_total);
  }
}

TEST(RolloutEngineTest, PolicyAsDraftAcceptsEverythingAndRoutesLikeSingleSteps) {
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 6; ++i) {
    GenerationRequest r = Request(Prompt(20, 300 + i), 0.0, 30);
    r.routed_experts = true;
    reqs.push_back(r);
  }
  auto plain = MakeEngine(Options(DrafterKind::kNone));
  auto want = RunAll(plain.get(), reqs);
  auto spec = MakeEngine(Options(DrafterKind::kDraftModel));
  UsePolicyAsDraft(spec.get());
  auto got = RunAll(spec.get(), reqs);
  const size_t width = 2 * 2;  // top_k * MoE layers
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(got[i][0].tokens, want[i][0].tokens);
    ASSERT_EQ(want[i][0].routed_experts.size(), want[i][0].tokens.size() * width);
    // A verify pass of k+1 tokens routes each token as k+1 single steps do.
    EXPECT_EQ(got[i][0].routed_experts, want[i][0].routed_experts) << "prompt " << i;
    EXPECT_EQ(got[i][0].accepted_tokens, got[i][0].drafted_tokens);
    EXPECT_GT(got[i][0].drafted_tokens, 20);
  }
}

// log p under the sampling distribution, teacher forced by a fresh model.
void ExpectTeacherForcedLogprobs(RolloutEngine* e, const GenerationRequest& req,
                                 const SampleOutput& s) {
  torch::NoGradGuard no_grad;
  MoeTransformer model(e->config());
  ASSERT_TRUE(model->ImportWeights(e->ExportWeights()).ok());
  model->eval();
  std::vector<int64_t> ids(req.prompt.begin(), req.prompt.end());
  ids.insert(ids.end(), s.tokens.begin(), s.tokens.end());
  const int64_t n = static_cast<int64_t>(ids.size());
  at::Tensor logits =
      model->Forward(torch::tensor(ids, at::kLong).unsqueeze(0), at::arange(n).unsqueeze(0),
                     at::ones({1, n}, at::kBool), nullptr)
          .logits[0].to(at::kFloat).contiguous();
  const int vocab = static_cast<int>(e->config().vocab_size);
  ASSERT_EQ(s.raw_logprobs.size(), s.tokens.size());
  for (size_t j = 0; j < s.tokens.size(); ++j) {
    const int64_t pos = static_cast<int64_t>(req.prompt.size() + j) - 1;
    const float* row = logits[pos].data_ptr<float>();
    std::vector<double> p = SamplingDistribution(row, vocab, req.sampling);
    ASSERT_GT(p[s.tokens[j]], 0.0) << "token " << j << " has zero probability";
    EXPECT_NEAR(s.logprobs[j], std::log(p[s.tokens[j]]), 1e-5) << "token " << j;
    EXPECT_NEAR(s.raw_logprobs[j], RawLogprob(row, vocab, s.tokens[j]), 1e-5) << "token " << j;
  }
}

TEST(RolloutEngineTest, StreamedLogprobsEqualTeacherForcedOnesForEveryDrafter) {
  for (DrafterKind d :
       {DrafterKind::kNone, DrafterKind::kNgram, DrafterKind::kMtp, DrafterKind::kDraftModel}) {
    SCOPED_TRACE(DrafterName(d));
    auto e = MakeEngine(Options(d, /*float64=*/false));
    if (d == DrafterKind::kDraftModel) UsePolicyAsDraft(e.get());
    GenerationRequest r = Request(Prompt(24, 7), 0.9, 48, /*seed=*/11, /*n=*/3);
    r.sampling.top_k = 12;
    r.sampling.top_p = 0.95;
    r.raw_logprobs = true;
    auto out = e->Generate(r);
    ASSERT_TRUE(out.ok()) << out.status();
    for (const SampleOutput& s : *out) ExpectTeacherForcedLogprobs(e.get(), r, s);
    if (d != DrafterKind::kNone) EXPECT_GT(e->Stats().drafted_tokens, 0);
  }
}

TEST(RolloutEngineTest, SeededSamplesDoNotDependOnTheBatchOrOnNgramDrafting) {
  GenerationRequest r = Request(Prompt(30, 9), 1.0, 40, /*seed=*/42, /*n=*/4);
  auto alone = MakeEngine(Options(DrafterKind::kNone));
  auto a = RunAll(alone.get(), {r});
  auto again = RunAll(alone.get(), {r});
  // In a batch with other requests, and through the n-gram drafter.
  auto busy = MakeEngine(Options(DrafterKind::kNgram));
  std::vector<GenerationRequest> batch = {Request(Prompt(50, 1), 0.7, 60, 5, 3), r,
                                          Request(Prompt(10, 2), 0.0, 20)};
  auto b = RunAll(busy.get(), batch);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(a[0][i].tokens, again[0][i].tokens);
    EXPECT_EQ(a[0][i].tokens, b[1][i].tokens) << "sample " << i;
    EXPECT_EQ(a[0][i].seed, b[1][i].seed);
  }
  EXPECT_NE(a[0][0].tokens, a[0][1].tokens);
}

TEST(RolloutEngineTest, PrefixSharingOnAndOffGiveIdenticalOutputs) {
  EngineOptions on = Options(DrafterKind::kMtp);
  EngineOptions off = on;
  off.prefix_sharing = false;
  GenerationRequest r = Request(Prompt(45, 4), 0.8, 30, 3, 6);  // 44 = 5.5 blocks of 8
  auto a = RunAll(MakeEngine(on).get(), {r});
  auto b = RunAll(MakeEngine(off).get(), {r});
  for (int i = 0; i < 6; ++i) EXPECT_EQ(a[0][i].tokens, b[0][i].tokens) << "sample " << i;
}

TEST(RolloutEngineTest, WithTheNgramDrafterAGroupsFirstSampleLeadsItsSiblings) {
  for (DrafterKind d : {DrafterKind::kNone, DrafterKind::kNgram}) {
    EngineOptions o = Options(d);
    o.max_batch = 2;
    auto e = MakeEngine(o);
    std::vector<std::pair<int, int>> order;  // (group, sample) as they finish
    for (int g = 0; g < 2; ++g) {
      GenerationRequest r = Request(Prompt(10, 70 + g), 0.0, 24, 1, 2);
      ASSERT_TRUE(
          e->Submit(r, [&order, g](const SampleOutput& s) { order.push_back({g, s.sample_index}); })
              .ok());
    }
    e->RunUntilIdle();
    ASSERT_EQ(order.size(), 4u);
    std::vector<std::pair<int, int>> first_two = {order[0], order[1]};
    std::sort(first_two.begin(), first_two.end());
    if (d == DrafterKind::kNgram) {
      // Both groups' leaders ran first; their siblings then drafted from them.
      EXPECT_EQ(first_two, (std::vector<std::pair<int, int>>{{0, 0}, {1, 0}}));
      EXPECT_GT(e->Stats().accepted_tokens, 0);
    } else {
      EXPECT_EQ(first_two, (std::vector<std::pair<int, int>>{{0, 0}, {0, 1}}));  // FIFO
    }
  }
}

TEST(RolloutEngineTest, StopTokenAndMaxTokensInsideAnAcceptedDraftTruncateExactly) {
  GenerationRequest base = Request(Prompt(16, 21), 0.0, 40);
  auto plain = MakeEngine(Options(DrafterKind::kNone));
  auto full = plain->Generate(base);
  ASSERT_TRUE(full.ok());
  const std::vector<int> tokens = (*full)[0].tokens;
  auto spec = MakeEngine(Options(DrafterKind::kDraftModel, true, 6));
  UsePolicyAsDraft(spec.get());
  // The token at index 9 as a stop token: the output ends at its first occurrence.
  GenerationRequest stop = base;
  stop.sampling.stop_token_ids = {tokens[9]};
  const size_t first = std::find(tokens.begin(), tokens.end(), tokens[9]) - tokens.begin();
  auto s = spec->Generate(stop);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)[0].finish, FinishKind::kStop);
  EXPECT_EQ((*s)[0].tokens, std::vector<int>(tokens.begin(), tokens.begin() + first + 1));
  for (int max_new : {1, 5, 7, 13}) {
    GenerationRequest m = base;
    m.sampling.max_new_tokens = max_new;
    auto t = spec->Generate(m);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ((*t)[0].finish, FinishKind::kLength);
    EXPECT_EQ((*t)[0].tokens, std::vector<int>(tokens.begin(), tokens.begin() + max_new));
    ASSERT_EQ((*t)[0].logprobs.size(), static_cast<size_t>(max_new));
  }
  // The same through a stop string (tokens as letters).
  GenerationRequest str = base;
  str.detokenize = [](const std::vector<int>& ids) {
    std::string out;
    for (int id : ids) out += static_cast<char>('a' + id % 26);
    return out;
  };
  std::string text = str.detokenize(std::vector<int>(tokens.begin(), tokens.begin() + 12));
  str.sampling.stop_strings = {text.substr(9, 3)};
  auto u = spec->Generate(str);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ((*u)[0].finish, FinishKind::kStop);
  EXPECT_LE((*u)[0].tokens.size(), 12u);
  EXPECT_NE(str.detokenize((*u)[0].tokens).find(text.substr(9, 3)), std::string::npos);
  EXPECT_EQ(spec->Stats().kv_blocks_free, spec->Stats().kv_blocks_total);
}

TEST(RolloutEngineTest, NoKvBlockLeakAfterTenThousandStepsWithPreemption) {
  EngineOptions o = Options(DrafterKind::kNgram, /*float64=*/false);
  o.kv_blocks = 60;  // tight: forces preemption and recomputation
  o.max_batch = 16;
  auto e = MakeEngine(o);
  auto plain = MakeEngine(Options(DrafterKind::kNone, false));
  int64_t submitted = 0;
  std::vector<GenerationRequest> sample_reqs;
  while (e->Stats().steps < 10000) {
    std::vector<GenerationRequest> reqs;
    for (int i = 0; i < 12; ++i) {
      GenerationRequest r = Request(Prompt(5 + (submitted % 40), submitted), 0.0, 8 + submitted % 50);
      r.n = 1 + submitted % 3;
      reqs.push_back(r);
      ++submitted;
    }
    auto out = RunAll(e.get(), reqs);
    if (sample_reqs.size() < 12) {
      // Preempted and recomputed samples still equal plain decoding.
      auto want = RunAll(plain.get(), reqs);
      for (size_t i = 0; i < reqs.size(); ++i) {
        for (size_t j = 0; j < out[i].size(); ++j) EXPECT_EQ(out[i][j].tokens, want[i][j].tokens);
      }
      sample_reqs.insert(sample_reqs.end(), reqs.begin(), reqs.end());
    }
    EngineStats st = e->Stats();
    ASSERT_EQ(st.kv_blocks_free, st.kv_blocks_total) << "after step " << st.steps;
    ASSERT_EQ(st.running, 0);
  }
  EXPECT_GT(e->Stats().preemptions, 0);
}

TEST(RolloutEngineTest, PartialRolloutsResumeToTheUninterruptedResult) {
  auto e = MakeEngine(Options(DrafterKind::kNgram));
  GenerationRequest r = Request(Prompt(12, 31), 1.0, 50, 8, 2);
  auto whole = e->Generate(r);
  ASSERT_TRUE(whole.ok());
  GenerationRequest part = r;
  part.token_budget = 15;
  auto first = e->Generate(part);
  ASSERT_TRUE(first.ok());
  for (const SampleOutput& s : *first) {
    EXPECT_EQ(s.finish, FinishKind::kPartial);
    EXPECT_EQ(s.tokens.size(), 15u);
  }
  GenerationRequest rest = r;
  rest.resume = *first;
  auto second = e->Generate(rest);
  ASSERT_TRUE(second.ok());
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ((*second)[i].tokens, (*whole)[i].tokens);
    EXPECT_EQ((*second)[i].finish, (*whole)[i].finish);
    EXPECT_EQ((*second)[i].weight_versions.size(), (*whole)[i].tokens.size());
  }
  // Resume state that does not add up is refused.
  GenerationRequest bad = r;
  bad.resume = *first;
  bad.resume[0].logprobs.pop_back();
  EXPECT_THAT(std::string(e->Submit(bad, [](const SampleOutput&) {}).status().message()),
              HasSubstr("same length"));
}

TEST(RolloutEngineTest, WeightUpdateMidStreamSwitchesVersionsAndFollowsTheNewWeights) {
  ModelConfig other = TinyConfig();
  other.init_seed = 99;
  std::vector<RawTensor> new_weights = MakeEngine(Options(DrafterKind::kNone), other)
                                           ->ExportWeights();
  for (DrafterKind d : {DrafterKind::kNone, DrafterKind::kMtp}) {
    SCOPED_TRACE(DrafterName(d));
    auto e = MakeEngine(Options(d));
    GenerationRequest r = Request(Prompt(20, 41), 0.0, 40);
    SampleOutput got;
    bool done = false;
    ASSERT_TRUE(e->Submit(r, [&](const SampleOutput& s) { got = s; done = true; }).ok());
    for (int i = 0; i < 4; ++i) e->Step();
    ASSERT_TRUE(e->UpdateWeights(7, new_weights).ok());
    e->RunUntilIdle();
    ASSERT_TRUE(done);
    size_t old_count = 0;
    while (old_count < got.weight_versions.size() && got.weight_versions[old_count] == 0) {
      ++old_count;
    }
    ASSERT_GT(old_count, 0u);
    ASSERT_LT(old_count, got.tokens.size());
    for (size_t j = old_count; j < got.weight_versions.size(); ++j) {
      EXPECT_EQ(got.weight_versions[j], 7);
    }
    // Continuing the old-weight prefix on a fresh engine with the new weights.
    auto fresh = MakeEngine(Options(DrafterKind::kNone), other);
    SampleOutput prefix = got;
    prefix.tokens.resize(old_count);
    prefix.logprobs.resize(old_count);
    prefix.weight_versions.resize(old_count);
    prefix.finish = FinishKind::kPartial;
    GenerationRequest cont = r;
    cont.resume = {prefix};
    auto want = fresh->Generate(cont);
    ASSERT_TRUE(want.ok());
    EXPECT_EQ(got.tokens, (*want)[0].tokens);
    EXPECT_EQ(e->weight_version(), 7);
  }
}

TEST(RolloutEngineTest, RejectedWeightsKeepTheOldOnesServing) {
  auto e = MakeEngine(Options(DrafterKind::kNone));
  GenerationRequest r = Request(Prompt(10, 51), 0.0, 20);
  auto before = e->Generate(r);
  std::vector<RawTensor> w = e->ExportWeights();
  w[1].shape.back() += 1;
  absl::Status s = e->UpdateWeights(3, w);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr(w[1].name));
  auto after = e->Generate(r);
  EXPECT_EQ((*before)[0].tokens, (*after)[0].tokens);
  EXPECT_EQ(e->weight_version(), 0);
}

TEST(RolloutEngineTest, BadRequestsAreRefusedWithTheParameterNamed) {
  auto e = MakeEngine(Options(DrafterKind::kNone));
  GenerationRequest too_long = Request(Prompt(160, 1), 0.0, 5);
  absl::Status s = e->Submit(too_long, [](const SampleOutput&) {}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("context"));
  struct Case {
    std::function<void(GenerationRequest*)> mutate;
    const char* word;
  };
  std::vector<Case> cases = {
      {[](GenerationRequest* r) { r->sampling.temperature = -1; }, "temperature"},
      {[](GenerationRequest* r) { r->sampling.temperature = NAN; }, "temperature"},
      {[](GenerationRequest* r) { r->sampling.top_p = 1.5; }, "top_p"},
      {[](GenerationRequest* r) { r->sampling.top_k = -2; }, "top_k"},
      {[](GenerationRequest* r) { r->sampling.max_new_tokens = -1; }, "max_new_tokens"},
      {[](GenerationRequest* r) { r->sampling.stop_token_ids = {32}; }, "stop_token_ids"},
      {[](GenerationRequest* r) { r->n = 0; }, "n must"},
      {[](GenerationRequest* r) { r->token_budget = -1; }, "token_budget"},
      {[](GenerationRequest* r) { r->prompt = {3, 40}; }, "vocabulary"},
  };
  for (const Case& c : cases) {
    GenerationRequest r = Request(Prompt(5, 2), 1.0, 5);
    c.mutate(&r);
    absl::Status st = e->Submit(r, [](const SampleOutput&) {}).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.word;
    EXPECT_THAT(std::string(st.message()), HasSubstr(c.word));
  }
  EXPECT_EQ(e->Stats().waiting, 0);
}

TEST(RolloutEngineTest, GeneratesToTheFullContextWithMemoryFollowingLength) {
  ModelConfig c = TinyConfig(16384);
  c.n_layers = 1;
  c.d_model = 16;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.expert_hidden = 16;
  c.mtp_layers = 0;
  EngineOptions o = Options(DrafterKind::kNgram, /*float64=*/false, 8);
  o.kv_block_size = 64;
  o.max_batch = 2;
  auto e = MakeEngine(o, c);
  GenerationRequest r = Request(Prompt(32, 61), 0.0, 0);
  SampleOutput got;
  ASSERT_TRUE(e->Submit(r, [&](const SampleOutput& s) { got = s; }).ok());
  int64_t max_used = 0;
  int64_t checked = 0;
  while (e->Step()) {
    EngineStats st = e->Stats();
    const int64_t used = st.kv_blocks_total - st.kv_blocks_free;
    max_used = std::max(max_used, used);
    if (st.steps % 512 == 0 && st.running == 1) {
      // Blocks held follow the sequence's own length (no per-slot reservation).
      EXPECT_LE(used, (32 + st.tokens_generated + 8) / 64 + 2) << "step " << st.steps;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
  EXPECT_EQ(got.finish, FinishKind::kLength);
  EXPECT_EQ(got.tokens.size(), 16384u - 32u);
  EXPECT_EQ(max_used, 16384 / 64);
  EXPECT_EQ(e->Stats().kv_blocks_free, e->Stats().kv_blocks_total);
}

}  // namespace
}  // namespace rlpost
