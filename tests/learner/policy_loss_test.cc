#include "learner/policy_loss.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/types.h>

#include <cmath>

namespace rlpost {
namespace {

using ::testing::HasSubstr;

at::Tensor Row(std::vector<double> v) {
  return torch::tensor(v, at::kDouble).unsqueeze(0);
}

// One token with log-ratio `lr` and advantage `a`.
PolicyLossTerms One(double lr, double a, const PolicyLossOptions& o) {
  at::Tensor logp = Row({lr}).requires_grad_(true);
  return PolicyGradientLoss(logp, Row({0.0}), Row({a}), Row({1.0}), o);
}

TEST(PolicyLossTest, ClipRangesCutTheSurrogateOnEachSide) {
  PolicyLossOptions o;  // clip 0.2 both sides
  // Ratio e^0.5 = 1.6487 with A = +1: min(1.6487, 1.2) -> loss -1.2, clipped.
  PolicyLossTerms t = One(0.5, 1.0, o);
  EXPECT_NEAR(t.token_loss.item<double>(), -1.2, 1e-12);
  EXPECT_EQ(t.clipped.item<double>(), 1.0);
  // Clip-higher: the ceiling moves to 1.28.
  o.clip_high = 0.28;
  EXPECT_NEAR(One(0.5, 1.0, o).token_loss.item<double>(), -1.28, 1e-12);
  // Ratio 0.5 with A = -1: surrogates -0.5 and clamp(0.5, 0.8, 1.28) * -1 = -0.8;
  // the minimum is -0.8, loss 0.8, clipped.
  t = One(std::log(0.5), -1.0, o);
  EXPECT_NEAR(t.token_loss.item<double>(), 0.8, 1e-12);
  EXPECT_EQ(t.clipped.item<double>(), 1.0);
  // Inside the range nothing is clipped: ratio 1.1, A = 2 -> loss -2.2.
  t = One(std::log(1.1), 2.0, o);
  EXPECT_NEAR(t.token_loss.item<double>(), -2.2, 1e-12);
  EXPECT_EQ(t.clipped.item<double>(), 0.0);
}

TEST(PolicyLossTest, DualClipCapsTheLossOfNegativeAdvantages) {
  PolicyLossOptions o;
  // Ratio e^2 = 7.389 with A = -1: the plain surrogate loss is 7.389.
  EXPECT_NEAR(One(2.0, -1.0, o).token_loss.item<double>(), std::exp(2.0), 1e-12);
  o.dual_clip = 3.0;
  EXPECT_NEAR(One(2.0, -1.0, o).token_loss.item<double>(), 3.0, 1e-12);
  // Positive advantages are untouched.
  EXPECT_NEAR(One(2.0, 1.0, o).token_loss.item<double>(), -1.2, 1e-12);
}

TEST(PolicyLossTest, SequenceRatiosUseTheMeanLogRatio) {
  PolicyLossOptions o;
  o.sequence_ratio = true;
  o.clip_low = o.clip_high = 0.3;
  // Log-ratios 0.2, -0.1, 0.5 and a padding column: mean 0.2, ratio e^0.2.
  at::Tensor logp = Row({0.2, -0.1, 0.5, 7.0}).requires_grad_(true);
  at::Tensor mask = Row({1, 1, 1, 0});
  PolicyLossTerms t = PolicyGradientLoss(logp, Row({0, 0, 0, 0}), Row({1.0}), mask, o);
  const double r = std::exp(0.2);
  for (int j = 0; j < 3; ++j) EXPECT_NEAR(t.token_loss[0][j].item<double>(), -r, 1e-12);
  // d/dlogp_j of the three tokens' loss: 3 * (-r) * (1/3) = -r for each token.
  (t.token_loss * mask).sum().backward();
  for (int j = 0; j < 3; ++j) EXPECT_NEAR(logp.grad()[0][j].item<double>(), -r, 1e-12);
  EXPECT_EQ(logp.grad()[0][3].item<double>(), 0.0);
}

TEST(PolicyLossTest, TruncatedImportanceSamplingWeightsByTheCappedMismatch) {
  PolicyLossOptions o;
  o.tis_cap = 1.2;
  // Learner logprob 0.5 above the rollout's: weight min(e^0.5, 1.2) = 1.2;
  // the PPO ratio is taken against the learner's own logprob, so it is 1.
  at::Tensor logp = Row({0.5}).requires_grad_(true);
  PolicyLossTerms t = PolicyGradientLoss(logp, Row({0.0}), Row({2.0}), Row({1.0}), o);
  EXPECT_NEAR(t.token_loss.item<double>(), -2.4, 1e-12);
  t.token_loss.sum().backward();
  EXPECT_NEAR(logp.grad().item<double>(), -2.4, 1e-12);
  // Below the cap the weight is the ratio itself: e^-0.3.
  at::Tensor low = Row({-0.3}).requires_grad_(true);
  t = PolicyGradientLoss(low, Row({0.0}), Row({1.0}), Row({1.0}), o);
  EXPECT_NEAR(t.token_loss.item<double>(), -std::exp(-0.3), 1e-12);
}

TEST(PolicyLossTest, AggregationModes) {
  at::Tensor values = torch::tensor({1.0, 2.0, 3.0, 4.0, 9.0, 9.0}, at::kDouble).view({2, 3});
  at::Tensor mask = torch::tensor({1.0, 1.0, 1.0, 1.0, 0.0, 0.0}, at::kDouble).view({2, 3});
  LossScale s;
  s.global_tokens = 4;
  s.global_sequences = 2;
  s.norm_length = 5.0;
  // token-mean: (1 + 2 + 3 + 4) / 4.
  EXPECT_NEAR(AggregateLoss(values, mask, s).item<double>(), 2.5, 1e-12);
  // seq-mean-token-mean: (mean(1,2,3) + mean(4)) / 2 = (2 + 4) / 2.
  s.mode = LossAggregation::kSeqMeanTokenMean;
  EXPECT_NEAR(AggregateLoss(values, mask, s).item<double>(), 3.0, 1e-12);
  // seq-mean-token-sum-norm: (6 + 4) / (5 * 2).
  s.mode = LossAggregation::kSeqMeanTokenSumNorm;
  EXPECT_NEAR(AggregateLoss(values, mask, s).item<double>(), 1.0, 1e-12);
  // Global counts larger than this rank's share: the ranks' sums add up.
  s.mode = LossAggregation::kTokenMean;
  s.global_tokens = 8;
  EXPECT_NEAR(AggregateLoss(values, mask, s).item<double>(), 1.25, 1e-12);
}

TEST(PolicyLossTest, UnknownAggregationListsTheValidOnes) {
  EXPECT_TRUE(ParseLossAggregation("seq-mean-token-mean").ok());
  absl::Status s = ParseLossAggregation("sum").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("token-mean, seq-mean-token-mean, seq-mean-token-sum-norm"));
}

}  // namespace
}  // namespace rlpost
