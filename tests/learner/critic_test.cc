// PPO with a critic: the clipped value loss, value pre-training, and GAE
// advantages steering the policy.
#include "learner/critic.h"

#include <gtest/gtest.h>

#include <cmath>

#include <torch/types.h>

#include "learner/trainer.h"
#include "tests/learner/tiny_run_config.h"

namespace rlpost {
namespace {

TEST(ClippedValueLossTest, HandComputed) {
  const at::Tensor v = at::tensor({0.6, 1.0}, at::kDouble).view({1, 2});
  const at::Tensor old = at::tensor({0.5, 0.5}, at::kDouble).view({1, 2});
  const at::Tensor ret = at::tensor({1.0, 0.0}, at::kDouble).view({1, 2});
  // Token 0: unclipped (0.6 - 1)^2 = 0.16; clipped value 0.55 gives 0.2025,
  // the larger. Token 1: unclipped 1.0; clipped value 0.55 gives 0.3025.
  auto [loss, clipped] = ClippedValueLoss(v, old, ret, 0.05);
  EXPECT_NEAR(loss[0][0].item<double>(), 0.5 * 0.2025, 1e-12);
  EXPECT_NEAR(loss[0][1].item<double>(), 0.5 * 1.0, 1e-12);
  EXPECT_EQ(clipped[0][0].item<double>(), 1.0);
  EXPECT_EQ(clipped[0][1].item<double>(), 0.0);
  auto [plain, none] = ClippedValueLoss(v, old, ret, 0.0);
  EXPECT_NEAR(plain[0][0].item<double>(), 0.5 * 0.16, 1e-12);
  EXPECT_EQ(none.sum().item<double>(), 0.0);
}

// Two prompts whose samples always earn 1 and 0.
std::vector<TrainExample> Batch() {
  std::vector<TrainExample> b;
  for (int i = 0; i < 4; ++i) {
    TrainExample ex;
    const bool good = i % 2 == 0;
    ex.prompt = {1, good ? 5 : 6, 7};
    ex.response = {good ? 20 : 21, 22, 2};
    ex.old_logprobs.assign(ex.response.size(), -3.7f);
    ex.reward = good ? 1.0f : 0.0f;
    b.push_back(ex);
  }
  return b;
}

StepOptions GaeOptions(bool critic_only) {
  StepOptions o;
  o.lr = 5e-3;
  o.critic.enabled = true;
  o.critic.critic_only = critic_only;
  o.critic.lr = 1e-2;
  o.critic.gae.lambda_policy = 0.95;
  o.critic.gae.lambda_critic = 1.0;
  return o;
}

TEST(CriticTest, ValuePretrainingFitsTheReturnsAndLeavesThePolicyAlone) {
  auto t = Trainer::Create(TinyRunConfig(), 40, nullptr);
  ASSERT_TRUE(t.ok());
  const std::vector<RawTensor> policy = (*t)->ExportWeights();
  StepStats first, last;
  for (int s = 0; s < 40; ++s) {
    auto r = (*t)->Step(Batch(), GaeOptions(/*critic_only=*/true));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(r->policy_updated);
    EXPECT_EQ(r->weight_version, 0);
    if (s == 0) first = *r;
    last = *r;
  }
  // The zero value head starts at 0 against Monte Carlo returns of 1 and 0.
  EXPECT_NEAR(first.value_mean, 0.0, 1e-9);
  EXPECT_NEAR(first.return_mean, 0.5, 1e-6);
  EXPECT_NEAR(first.value_loss, 0.25, 1e-6);  // 0.5 * mean of (0 - R)^2
  EXPECT_LT(last.value_loss, 0.02);
  EXPECT_EQ((*t)->weight_version(), 0);
  const std::vector<RawTensor> after = (*t)->ExportWeights();
  for (size_t i = 0; i < policy.size(); ++i) EXPECT_EQ(after[i].bytes, policy[i].bytes) << policy[i].name;
}

TEST(CriticTest, GaeAdvantagesRaiseTheRewardedResponse) {
  auto t = Trainer::Create(TinyRunConfig(), 40, nullptr);
  StepOptions measure;
  measure.objective = TrainObjective::kSft;
  measure.lr = 0.0;
  auto nll = [&](int which) {
    std::vector<TrainExample> one = {Batch()[static_cast<size_t>(which)]};
    return (*t)->Step(one, measure)->loss;
  };
  const double good_before = nll(0), bad_before = nll(1);
  for (int s = 0; s < 5; ++s) {
    auto r = (*t)->Step(Batch(), GaeOptions(false));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->policy_updated);
    EXPECT_GT(r->value_loss, 0.0);
  }
  EXPECT_LT(nll(0), good_before - 0.05);
  EXPECT_GT(nll(1), bad_before + 0.05);
}

TEST(CriticTest, KlInTheRewardLowersTheReturns) {
  // Rollout logprobs far from the (reference) policy's: a large per-token
  // KL, so returns fall below the outcome reward.
  auto t = Trainer::Create(TinyRunConfig(), 40, nullptr);
  std::vector<TrainExample> batch = Batch();
  for (TrainExample& ex : batch) ex.old_logprobs.assign(ex.response.size(), -1.0f);
  StepOptions o = GaeOptions(true);
  auto plain = (*t)->Step(batch, o);
  o.critic.kl_in_reward_coef = 0.1;
  o.kl_estimator = KlEstimator::kK3;
  auto with_kl = (*t)->Step(batch, o);
  ASSERT_TRUE(plain.ok() && with_kl.ok());
  EXPECT_NEAR(plain->return_mean, 0.5, 1e-6);
  // k3 of log-ratio about -2.7 is about 1.8 per token: returns drop by
  // 0.1 * 1.8 per remaining token.
  EXPECT_LT(with_kl->return_mean, 0.5 - 0.2);
}

TEST(MixedPrecisionTest, Bf16StepsTrainWithFloat32MasterWeights) {
  auto fp32 = Trainer::Create(TinyRunConfig(), 40, nullptr);
  auto bf16 = Trainer::Create(TinyRunConfig(), 40, nullptr);
  StepOptions o;
  o.objective = TrainObjective::kSft;
  o.lr = 1e-2;
  StepStats first32, first16, last16;
  for (int s = 0; s < 30; ++s) {
    o.bf16 = false;
    auto a = (*fp32)->Step(Batch(), o);
    o.bf16 = true;
    auto b = (*bf16)->Step(Batch(), o);
    ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
    if (s == 0) {
      first32 = *a;
      first16 = *b;
    }
    last16 = *b;
  }
  // Same weights at step 0: the bf16 loss is the fp32 one up to bf16
  // rounding, and bf16 training still fits the batch.
  EXPECT_NEAR(first16.loss, first32.loss, 0.02 * first32.loss);
  EXPECT_NE(first16.loss, first32.loss);  // bf16 matmuls really ran
  EXPECT_LT(last16.loss, 0.5 * first16.loss);
  for (const RawTensor& t : (*bf16)->ExportWeights()) EXPECT_EQ(t.dtype, RawDType::kFloat32);
  // PPO with a critic under bf16 too.
  StepOptions g = GaeOptions(false);
  g.bf16 = true;
  auto r = (*bf16)->Step(Batch(), g);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(std::isfinite(r->value_loss));
}

}  // namespace
}  // namespace rlpost
