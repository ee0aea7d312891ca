#include "learner/trainer.h"
#include "tests/learner/tiny_run_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "learner/learner_service.h"
#include "learner/lr_schedule.h"
#include "model/char_tokenizer.h"
#include "model/model_config.h"

namespace rlpost {
namespace {

using ::testing::HasSubstr;

std::vector<TrainExample> SftBatch() {
  std::vector<TrainExample> b;
  for (int i = 0; i < 4; ++i) {
    TrainExample ex;
    ex.prompt = {1, 10 + i, 11};
    ex.response = {20 + i, 21, 22, 2};
    b.push_back(ex);
  }
  return b;
}

TEST(TrainerTest, SftLowersLossAndBumpsVersion) {
  auto t = Trainer::Create(TinyRunConfig(), 40, nullptr);
  ASSERT_TRUE(t.ok());
  StepOptions o;
  o.objective = TrainObjective::kSft;
  o.lr = 1e-2;
  auto first = (*t)->Step(SftBatch(), o);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->weight_version, 1);
  EXPECT_EQ(first->tokens, 16);
  StepStats last;
  for (int i = 0; i < 30; ++i) last = *(*t)->Step(SftBatch(), o);
  EXPECT_LT(last.loss, first->loss * 0.5);
  EXPECT_EQ((*t)->weight_version(), 31);
}

// Old logprobs from an SFT "forward only" pass: a PG step on-policy has ratio
// 1, so nothing is clipped and the KL estimate is ~0; a positive advantage
// raises the sample's likelihood, a negative one lowers it.
TEST(TrainerTest, PolicyGradientFollowsTheAdvantageSign) {
  for (float sign : {1.0f, -1.0f}) {
    auto t = Trainer::Create(TinyRunConfig(), 40, nullptr);
    ASSERT_TRUE(t.ok());
    std::vector<TrainExample> batch = SftBatch();
    StepOptions sft;
    sft.objective = TrainObjective::kSft;
    sft.lr = 0.0;  // measure the NLL without changing weights
    double nll_before = (*t)->Step(batch, sft)->loss;
    // True old logprobs are unknown here; zero logprobs make the ratio
    // exp(logp) < 1, which the clip range may cut, so use a wide clip.
    for (auto& ex : batch) {
      ex.old_logprobs.assign(ex.response.size(), 0.0f);
      ex.advantage = sign;
    }
    StepOptions pg;
    pg.lr = 1e-2;
    pg.policy.clip_low = 1e9;
    pg.policy.clip_high = 1e9;
    for (int i = 0; i < 5; ++i) ASSERT_TRUE((*t)->Step(batch, pg).ok());
    double nll_after = (*t)->Step(SftBatch(), sft)->loss;
    if (sign > 0) {
      EXPECT_LT(nll_after, nll_before);
    } else {
      EXPECT_GT(nll_after, nll_before);
    }
  }
}

RunConfig WithMtp() {
  RunConfig c = TinyRunConfig();
  c.model.mtp_layers = 1;
  return c;
}

TEST(TrainerTest, SftTrainsTheMtpBlock) {
  auto t = Trainer::Create(WithMtp(), 40, nullptr);
  ASSERT_TRUE(t.ok());
  StepOptions o;
  o.objective = TrainObjective::kSft;
  o.lr = 1e-2;
  StepStats first = *(*t)->Step(SftBatch(), o);
  EXPECT_GT(first.mtp_loss, 0.0);
  StepStats last;
  for (int i = 0; i < 30; ++i) last = *(*t)->Step(SftBatch(), o);
  EXPECT_LT(last.mtp_loss, first.mtp_loss * 0.5);
}

// During RL the MTP loss trains the drafter only: the policy's weights after a
// PG step are bit-identical to those of a model without the MTP loss.
TEST(TrainerTest, PolicyGradientStepLeavesThePolicyUpdateUnchangedByMtp) {
  std::vector<TrainExample> batch = SftBatch();
  for (auto& ex : batch) {
    ex.old_logprobs.assign(ex.response.size(), -1.0f);
    ex.advantage = 0.5f;
  }
  std::vector<std::vector<RawTensor>> weights;
  for (double coef : {0.0, 1.0}) {
    auto t = Trainer::Create(WithMtp(), 40, nullptr);
    ASSERT_TRUE(t.ok());
    StepOptions o;
    o.lr = 1e-2;
    o.mtp_loss_coef = coef;
    StepStats s = *(*t)->Step(batch, o);
    EXPECT_GT(s.mtp_loss, 0.0);
    weights.push_back((*t)->ExportWeights());
  }
  ASSERT_EQ(weights[0].size(), weights[1].size());
  int mtp_tensors = 0, changed_mtp = 0;
  for (size_t i = 0; i < weights[0].size(); ++i) {
    // The MTP block is layer n_layers (1) in Hugging Face naming.
    bool mtp = weights[0][i].name.rfind("model.layers.1.", 0) == 0;
    if (mtp) {
      ++mtp_tensors;
      changed_mtp += weights[0][i].bytes != weights[1][i].bytes ? 1 : 0;
    } else {
      EXPECT_EQ(weights[0][i].bytes, weights[1][i].bytes) << weights[0][i].name;
    }
  }
  EXPECT_GT(mtp_tensors, 5);
  EXPECT_GT(changed_mtp, 0);
}

// The reference is the policy at the first KL step: KL 0 there, positive
// once the policy has moved; entropy is reported either way.
TEST(TrainerTest, KlToTheReferencePolicyStartsAtZeroAndGrows) {
  for (KlEstimator e : {KlEstimator::kK1, KlEstimator::kK2, KlEstimator::kK3}) {
    auto t = Trainer::Create(TinyRunConfig(), 40, nullptr);
    ASSERT_TRUE(t.ok());
    std::vector<TrainExample> batch = SftBatch();
    for (auto& ex : batch) {
      ex.old_logprobs.assign(ex.response.size(), -1.0f);
      ex.advantage = 1.0f;
      ex.reward = 1.0f;
    }
    StepOptions pg;
    pg.lr = 1e-2;
    pg.kl_coef = 0.1;
    pg.kl_estimator = e;
    pg.nll_coef = 0.1;
    pg.aggregation = LossAggregation::kSeqMeanTokenMean;
    auto first = (*t)->Step(batch, pg);
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_NEAR(first->ref_kl, 0.0, 1e-6);
    EXPECT_GT(first->entropy, 0.0);
    StepStats later;
    for (int i = 0; i < 5; ++i) later = *(*t)->Step(batch, pg);
    if (e == KlEstimator::kK1) {
      EXPECT_NE(later.ref_kl, 0.0);  // k1 has either sign per sample
    } else {
      EXPECT_GT(later.ref_kl, 1e-6);
    }
  }
}

TEST(TrainerTest, NonFiniteLossSkipsTheStepWithoutTouchingTheWeights) {
  auto t = Trainer::Create(TinyRunConfig(), 40, nullptr);
  ASSERT_TRUE(t.ok());
  std::vector<TrainExample> batch = SftBatch();
  for (auto& ex : batch) {
    ex.old_logprobs.assign(ex.response.size(), -1.0f);
    ex.advantage = 3e38f;  // finite, but the summed loss overflows float
  }
  StepOptions pg;
  pg.lr = 1e-2;
  const std::vector<RawTensor> before = (*t)->ExportWeights();
  auto s = (*t)->Step(batch, pg);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->skipped);
  EXPECT_THAT(s->skip_reason, HasSubstr("non-finite"));
  EXPECT_EQ(s->weight_version, 0);
  const std::vector<RawTensor> after = (*t)->ExportWeights();
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i) EXPECT_EQ(before[i].bytes, after[i].bytes);
  // The next sane batch trains normally.
  for (auto& ex : batch) ex.advantage = 1.0f;
  auto next = (*t)->Step(batch, pg);
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->skipped);
  EXPECT_EQ(next->weight_version, 1);
}

TEST(LrScheduleTest, WarmupThenConstantOrCosine) {
  LrSchedule s;
  s.base = 1.0;
  s.warmup_steps = 4;
  s.total_steps = 14;
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(s, 0), 0.25);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(s, 3), 1.0);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(s, 9), 1.0);
  s.cosine = true;
  s.min_ratio = 0.1;
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(s, 4), 1.0);
  EXPECT_NEAR(ScheduledLearningRate(s, 9), 0.1 + 0.5 * 0.9, 1e-12);  // halfway
  EXPECT_NEAR(ScheduledLearningRate(s, 14), 0.1, 1e-12);
  EXPECT_NEAR(ScheduledLearningRate(s, 100), 0.1, 1e-12);
}

TEST(TrainerTest, RouterReplayIsAppliedAndChecked) {
  std::vector<TrainExample> batch = SftBatch();
  for (auto& ex : batch) {
    ex.old_logprobs.assign(ex.response.size(), -1.0f);
    ex.advantage = 1.0f;
  }
  StepOptions pg;
  pg.lr = 0.0;  // compare losses of the same weights
  auto plain = Trainer::Create(TinyRunConfig(), 40, nullptr);
  const double own = (*plain)->Step(batch, pg)->loss;
  // Every response position forced onto experts 0 and 1 (top_k 2 per MoE layer).
  const RunConfig rc = TinyRunConfig();
  const ModelConfig mc = ModelConfig::FromShape(rc.model, 40);
  int64_t width = 0;
  for (int64_t l = 0; l < mc.n_layers; ++l) width += mc.IsMoeLayer(l) ? mc.top_k : 0;
  ASSERT_GT(width, 0);
  std::vector<TrainExample> forced = batch;
  for (auto& ex : forced) {
    for (size_t j = 0; j < ex.response.size() * static_cast<size_t>(width); ++j) {
      ex.routed_experts.push_back(static_cast<int32_t>(j % 2));
    }
  }
  auto replayed = Trainer::Create(rc, 40, nullptr);
  auto st = (*replayed)->Step(forced, pg);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_NE(st->loss, own);
  // A record of the wrong size, or an expert out of range, names the sample.
  forced[2].routed_experts.pop_back();
  absl::Status bad = (*replayed)->Step(forced, pg).status();
  EXPECT_THAT(std::string(bad.message()), HasSubstr("sample 2"));
  forced[2].routed_experts.push_back(99);
  bad = (*replayed)->Step(forced, pg).status();
  EXPECT_THAT(std::string(bad.message()), HasSubstr("outside"));
}

TEST(TrainerTest, RejectsInconsistentExamples) {
  auto t = Trainer::Create(TinyRunConfig(), 40, nullptr);
  std::vector<TrainExample> batch = SftBatch();
  StepOptions pg;
  auto s = (*t)->Step(batch, pg);  // PG without old logprobs
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("sample 0: 4 response tokens but 0 old logprobs"));
  for (auto& ex : batch) ex.old_logprobs.assign(ex.response.size(), -1.0f);
  batch[3].old_logprobs[1] = NAN;
  s = (*t)->Step(batch, pg);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("sample 3: old logprob nan"));
  batch[3].old_logprobs[1] = -1.0f;
  batch[2].advantage = INFINITY;
  s = (*t)->Step(batch, pg);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("sample 2: advantage inf"));
  batch[1].response[0] = 77;
  StepOptions sft;
  sft.objective = TrainObjective::kSft;
  s = (*t)->Step(batch, sft);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("sample 1: token id 77"));
  batch[0].prompt.assign(40, 3);
  s = (*t)->Step(batch, sft);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("sample 0: 44 tokens exceed the context"));
  EXPECT_EQ((*t)->weight_version(), 0);
}

TEST(TrainerTest, BuildTrainInputsTokenizesTextAndChecksLogprobs) {
  RunConfig config = TinyRunConfig();
  CharTokenizer tok;
  v1::TrainBatch batch;
  batch.set_objective(v1::OBJECTIVE_SFT);
  auto* s = batch.add_samples();
  s->set_prompt_text("1+2=");
  s->set_response_text("\\boxed{3}");
  std::vector<TrainExample> ex;
  StepOptions o;
  ASSERT_TRUE(BuildTrainInputs(batch, config, tok, &ex, &o).ok());
  ASSERT_EQ(ex.size(), 1u);
  EXPECT_EQ(ex[0].prompt.front(), CharTokenizer::kBos);
  EXPECT_EQ(ex[0].prompt.size(), 5u);
  EXPECT_EQ(ex[0].response.back(), CharTokenizer::kEos);
  EXPECT_EQ(o.objective, TrainObjective::kSft);

  batch.set_objective(v1::OBJECTIVE_POLICY_GRADIENT);
  s->add_prompt_token_ids(1);
  s->add_response_token_ids(5);
  s->add_response_token_ids(6);
  s->add_old_logprobs(-0.1f);
  absl::Status st = BuildTrainInputs(batch, config, tok, &ex, &o);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("old_logprobs"));
  batch.clear_samples();
  EXPECT_THAT(std::string(BuildTrainInputs(batch, config, tok, &ex, &o).message()),
              HasSubstr("no samples"));
}

TEST(TrainerTest, CheckpointWritesHuggingFaceFiles) {
  auto t = Trainer::Create(TinyRunConfig(), 40, nullptr);
  std::string dir = ::testing::TempDir() + "/ckpt";
  ASSERT_TRUE((*t)->SaveCheckpoint(dir).ok());
  for (const char* f : {"/config.json", "/model.safetensors", "/trainer_state.json"}) {
    EXPECT_TRUE(std::ifstream(dir + f).good()) << f;
  }
  // Saving again replaces the checkpoint whole and leaves no temporaries;
  // a stale temporary directory from a crash is cleared first.
  std::filesystem::create_directories(dir + ".tmp/junk");
  StepOptions sft;
  sft.objective = TrainObjective::kSft;
  sft.lr = 1e-2;
  ASSERT_TRUE((*t)->Step(SftBatch(), sft).ok());
  ASSERT_TRUE((*t)->SaveCheckpoint(dir + "/").ok());  // a trailing slash is fine
  std::ifstream state(dir + "/trainer_state.json");
  std::string text((std::istreambuf_iterator<char>(state)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("\"weight_version\": 1"));
  EXPECT_FALSE(std::filesystem::exists(dir + ".tmp"));
  EXPECT_FALSE(std::filesystem::exists(dir + ".old"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/junk"));
}

}  // namespace
}  // namespace rlpost
