// Packed micro-batches: the layout plans, the packed forward against separate
// forwards, and training steps whose result does not depend on how the batch
// was cut into micro-batches.
#include "learner/packing.h"

#include <gtest/gtest.h>

#include <torch/autograd.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "learner/trainer.h"
#include "model/moe_transformer.h"
#include "tests/learner/tiny_run_config.h"

namespace rlpost {
namespace {

using Plan = std::vector<std::vector<int64_t>>;

TEST(PackingPlanTest, RanksGetLongestFirstToTheLightestRank) {
  // Longest first: 9 -> r0, 7 -> r1, 5 -> r1 (12), 3 -> r0 (12), 2 -> r0 (tie).
  EXPECT_EQ(BalanceAcrossRanks({5, 9, 2, 7, 3}, 2), (Plan{{1, 2, 4}, {0, 3}}));
  EXPECT_EQ(BalanceAcrossRanks({5, 9, 2}, 1), (Plan{{0, 1, 2}}));
  EXPECT_EQ(BalanceAcrossRanks({4}, 3), (Plan{{0}, {}, {}}));
  EXPECT_EQ(BalanceAcrossRanks({}, 2), (Plan{{}, {}}));
}

TEST(PackingPlanTest, MicroBatchesAreFirstFitDecreasingWithinTheBudget) {
  const std::vector<int64_t> lengths = {5, 9, 2, 7, 3};
  // 9 | 7 | 5, then 3 joins 7 and 2 joins 5.
  EXPECT_EQ(PlanMicroBatches(lengths, {0, 1, 2, 3, 4}, 10), (Plan{{0, 2}, {1}, {3, 4}}));
  // A sequence longer than the budget travels alone.
  EXPECT_EQ(PlanMicroBatches(lengths, {1, 2}, 4), (Plan{{1}, {2}}));
  EXPECT_EQ(PlanMicroBatches(lengths, {4, 0}, 0), (Plan{{0, 4}}));
  EXPECT_EQ(PlanMicroBatches(lengths, {}, 10), Plan{});
}

std::vector<std::vector<int>> Sequences() {
  return {{1, 5, 6, 7, 8}, {1, 9, 10, 11, 12, 13, 14, 15, 16}, {1, 17, 3}};
}

at::Tensor Row(const std::vector<int>& ids) {
  std::vector<int64_t> v(ids.begin(), ids.end());
  return at::tensor(v, at::kLong).view({1, static_cast<int64_t>(v.size())});
}

TEST(PackedForwardTest, EqualsOneForwardPerSequence) {
  RunConfig run = TinyRunConfig();
  run.model.mtp_layers = 1;
  ModelConfig config = ModelConfig::FromShape(run.model, 40);
  MoeTransformer model(config);
  torch::NoGradGuard no_grad;
  std::vector<int> all;
  std::vector<int64_t> segments, positions;
  for (const auto& s : Sequences()) {
    all.insert(all.end(), s.begin(), s.end());
    segments.push_back(static_cast<int64_t>(s.size()));
    for (size_t i = 0; i < s.size(); ++i) positions.push_back(static_cast<int64_t>(i));
  }
  const int64_t t = static_cast<int64_t>(all.size());
  ForwardOptions fo;
  fo.segments = &segments;
  const at::Tensor pos = at::tensor(positions, at::kLong).view({1, t});
  const at::Tensor keys = at::ones({1, t}, at::kBool);
  ForwardOutput packed = model->Forward(Row(all), pos, keys, fo);
  // Next tokens within each sequence for the MTP block (0 after the last).
  std::vector<int> next;
  for (const auto& s : Sequences()) {
    for (size_t i = 0; i < s.size(); ++i) next.push_back(i + 1 < s.size() ? s[i + 1] : 0);
  }
  at::Tensor mtp_packed =
      model->MtpForward(packed.hidden, Row(next), pos, keys, nullptr, true, &segments);
  int64_t offset = 0;
  for (const auto& s : Sequences()) {
    const int64_t n = static_cast<int64_t>(s.size());
    PaddedBatch one = LeftPad({s});
    ForwardOutput alone = model->Forward(one.tokens, one.positions, one.mask, nullptr);
    EXPECT_LT((packed.logits.narrow(1, offset, n) - alone.logits).abs().max().item<double>(), 1e-5)
        << "sequence at column " << offset;
    std::vector<int> s_next(s.begin() + 1, s.end());
    s_next.push_back(0);
    at::Tensor mtp_alone =
        model->MtpForward(alone.hidden, Row(s_next), one.positions, one.mask, nullptr);
    EXPECT_LT((mtp_packed.narrow(1, offset, n) - mtp_alone).abs().max().item<double>(), 1e-5);
    offset += n;
  }
  // Logits at chosen columns only.
  const at::Tensor rows = at::tensor(std::vector<int64_t>{0, 6, t - 1}, at::kLong);
  fo.logit_rows = &rows;
  at::Tensor some = model->Forward(Row(all), pos, keys, fo).logits;
  ASSERT_EQ(some.dim(), 2);
  EXPECT_LT((some - packed.logits[0].index_select(0, rows)).abs().max().item<double>(), 1e-6);
}

// Whether the autograd graph behind `t` holds a node whose name contains
// `name`.
bool GraphHas(const at::Tensor& t, const std::string& name) {
  std::vector<torch::autograd::Node*> stack = {t.grad_fn().get()};
  std::set<torch::autograd::Node*> seen;
  while (!stack.empty()) {
    torch::autograd::Node* n = stack.back();
    stack.pop_back();
    if (n == nullptr || !seen.insert(n).second) continue;
    if (n->name().find(name) != std::string::npos) return true;
    for (const auto& e : n->next_edges()) stack.push_back(e.function.get());
  }
  return false;
}

TEST(PackedForwardTest, CheckpointedBlocksKeepOnlyTheirInputsAndGiveTheSameGradients) {
  RunConfig run = TinyRunConfig();
  run.model.n_layers = 2;
  MoeTransformer model(ModelConfig::FromShape(run.model, 40));
  std::vector<int64_t> segments = {5, 9};
  std::vector<int> ids = {1, 5, 6, 7, 8, 1, 9, 10, 11, 12, 13, 14, 15, 16};
  std::vector<int64_t> pos = {0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6, 7, 8};
  const at::Tensor positions = at::tensor(pos, at::kLong).view({1, 14});
  const at::Tensor keys = at::ones({1, 14}, at::kBool);
  std::vector<at::Tensor> grads[2];
  for (bool checkpoint : {false, true}) {
    ForwardOptions fo;
    fo.segments = &segments;
    fo.checkpoint_activations = checkpoint;
    ForwardOutput out = model->Forward(Row(ids), positions, keys, fo);
    EXPECT_EQ(GraphHas(out.logits, "CheckpointFunction"), checkpoint);
    model->zero_grad();
    (out.logits.logsumexp(-1).sum() + out.aux_loss + out.z_loss).backward();
    for (const at::Tensor& p : model->parameters()) grads[checkpoint].push_back(p.grad().clone());
  }
  for (size_t i = 0; i < grads[0].size(); ++i) EXPECT_TRUE(at::equal(grads[0][i], grads[1][i])) << i;
}

TEST(PackedForwardTest, SegmentsThatDoNotCoverTheRowAreRejected) {
  ModelConfig config = ModelConfig::FromShape(TinyRunConfig().model, 40);
  MoeTransformer model(config);
  std::vector<int64_t> segments = {2, 2};
  ForwardOptions fo;
  fo.segments = &segments;
  at::Tensor tokens = Row({1, 2, 3, 4, 5});
  EXPECT_THROW(model->Forward(tokens, at::zeros({1, 5}, at::kLong), at::ones({1, 5}, at::kBool), fo),
               c10::Error);
}

// Policy-gradient examples of varied lengths.
std::vector<TrainExample> VariedBatch() {
  std::vector<TrainExample> b;
  for (int i = 0; i < 8; ++i) {
    TrainExample ex;
    ex.prompt = {1, 3 + i, 4 + (i % 3)};
    if (i % 2 == 0) ex.prompt.push_back(12);
    ex.response.assign(static_cast<size_t>(1 + (i * 5) % 9), 20 + i);
    for (size_t j = 0; j < ex.response.size(); j += 2) ex.response[j] = 30 - i;
    ex.old_logprobs.assign(ex.response.size(), -3.5f + 0.2f * static_cast<float>(i % 4));
    ex.advantage = (i % 3 == 0) ? 1.0f : -0.7f;
    ex.reward = (i % 3 == 0) ? 1.0f : 0.0f;
    b.push_back(ex);
  }
  return b;
}

// Largest and mean absolute difference between two weight sets.
std::pair<double, double> AbsDiff(const std::vector<RawTensor>& a, const std::vector<RawTensor>& b) {
  double worst = 0.0, sum = 0.0;
  int64_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const float* x = reinterpret_cast<const float*>(a[i].bytes.data());
    const float* y = reinterpret_cast<const float*>(b[i].bytes.data());
    for (int64_t j = 0; j < a[i].numel(); ++j, ++n) {
      const double d = std::abs(static_cast<double>(x[j]) - y[j]);
      worst = std::max(worst, d);
      sum += d;
    }
  }
  return {worst, n > 0 ? sum / static_cast<double>(n) : 0.0};
}

TEST(MicroBatchTest, StepsDoNotDependOnHowTheBatchIsCut) {
  for (LossAggregation agg : {LossAggregation::kTokenMean, LossAggregation::kSeqMeanTokenMean,
                              LossAggregation::kSeqMeanTokenSumNorm}) {
   for (bool critic : {false, true}) {
    RunConfig run = TinyRunConfig();
    run.model.mtp_layers = 1;
    auto whole = Trainer::Create(run, 40, nullptr);
    auto cut = Trainer::Create(run, 40, nullptr);
    ASSERT_TRUE(whole.ok() && cut.ok());
    StepOptions o;
    o.lr = 5e-3;
    o.aggregation = agg;
    o.norm_length = 8;
    o.entropy_coef = 0.01;
    o.nll_coef = 0.1;
    o.kl_coef = 0.05;
    // The z-loss is a per-token mean, so micro-batches weighted by tokens
    // add up exactly; the load-balancing loss is per micro-batch by design.
    o.router_z_loss_coef = 0.1;
    o.aux_loss_coef = 0.0;
    // PPO with a critic: GAE advantages whitened over the batch, and the
    // critic's own update.
    o.critic.enabled = critic;
    o.critic.lr = 3e-3;
    for (int step = 0; step < 3; ++step) {
      o.micro_batch_tokens = 0;
      auto a = (*whole)->Step(VariedBatch(), o);
      o.micro_batch_tokens = 16;
      auto b = (*cut)->Step(VariedBatch(), o);
      ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
      EXPECT_EQ(a->micro_batches, 1);
      EXPECT_GE(b->micro_batches, 5);
      EXPECT_EQ(b->padding_fraction, 0.0);
      EXPECT_NEAR(a->loss, b->loss, 1e-5);
      EXPECT_NEAR(a->entropy, b->entropy, 1e-5);
      EXPECT_NEAR(a->mtp_loss, b->mtp_loss, 1e-5);
      EXPECT_NEAR(a->ref_kl, b->ref_kl, 1e-6);
      EXPECT_NEAR(a->grad_norm, b->grad_norm, 1e-5 * std::max(1.0, a->grad_norm));
      EXPECT_NEAR(a->value_loss, b->value_loss, 1e-5);
      EXPECT_NEAR(a->return_mean, b->return_mean, 1e-5);
    }
    // Only fp32 summation order differs. Adam scales each gradient element
    // by its own magnitude, so an element near zero (a cancellation, its
    // rounding large relative to it) can move its weight by a visible part
    // of lr; a real packing bug moves most weights by about lr.
    const auto [worst, mean] = AbsDiff((*cut)->ExportWeights(), (*whole)->ExportWeights());
    EXPECT_LT(worst, 0.02 * o.lr);
    EXPECT_LT(mean, 1e-4 * o.lr)
        << "aggregation " << static_cast<int>(agg) << " critic " << critic;
   }
  }
}

TEST(MicroBatchTest, ActivationCheckpointingChangesNothingButMemory) {
  for (bool bf16 : {false, true}) {
    RunConfig run = TinyRunConfig();
    run.model.n_layers = 2;
    run.model.mtp_layers = 1;
    auto plain = Trainer::Create(run, 40, nullptr);
    auto checkpointed = Trainer::Create(run, 40, nullptr);
    StepOptions o;
    o.lr = 5e-3;
    o.micro_batch_tokens = 24;
    o.router_z_loss_coef = 0.1;
    o.kl_coef = 0.05;
    o.bf16 = bf16;
    o.critic.enabled = true;  // the critic's blocks are checkpointed too
    for (int step = 0; step < 2; ++step) {
      o.checkpoint_activations = false;
      auto a = (*plain)->Step(VariedBatch(), o);
      o.checkpoint_activations = true;
      auto b = (*checkpointed)->Step(VariedBatch(), o);
      ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
      EXPECT_EQ(a->loss, b->loss);
      EXPECT_EQ(a->grad_norm, b->grad_norm);
      EXPECT_EQ(a->value_loss, b->value_loss);
    }
    // The recomputation is the same computation: identical weights.
    const std::vector<RawTensor> x = (*plain)->ExportWeights(), y = (*checkpointed)->ExportWeights();
    for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(x[i].bytes, y[i].bytes) << x[i].name << " bf16 " << bf16;
  }
}

TEST(MicroBatchTest, SftLossEqualsTheUnpackedNegativeLogLikelihood) {
  RunConfig run = TinyRunConfig();
  auto trainer = Trainer::Create(run, 40, nullptr);
  ASSERT_TRUE(trainer.ok());
  ModelConfig config = ModelConfig::FromShape(run.model, 40);
  MoeTransformer model(config);
  ASSERT_TRUE(model->ImportWeights((*trainer)->ExportWeights()).ok());
  const std::vector<TrainExample> batch = VariedBatch();
  double nll = 0.0;
  int64_t tokens = 0;
  {
    torch::NoGradGuard no_grad;
    for (const TrainExample& ex : batch) {
      std::vector<int> seq = ex.prompt;
      seq.insert(seq.end(), ex.response.begin(), ex.response.end());
      PaddedBatch one = LeftPad({seq});
      at::Tensor logp = at::log_softmax(
          model->Forward(one.tokens, one.positions, one.mask, nullptr).logits[0], -1);
      for (size_t j = 0; j < ex.response.size(); ++j) {
        nll -= logp[static_cast<int64_t>(ex.prompt.size() + j - 1)][ex.response[j]].item<double>();
        ++tokens;
      }
    }
  }
  StepOptions o;
  o.objective = TrainObjective::kSft;
  o.lr = 0.0;
  o.micro_batch_tokens = 20;
  auto stats = (*trainer)->Step(batch, o);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->tokens, tokens);
  EXPECT_NEAR(stats->loss, nll / static_cast<double>(tokens), 1e-5);
}

}  // namespace
}  // namespace rlpost
