#include "learner/advantages.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rlpost {
namespace {

using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pointwise;

MATCHER_P2(StatusIs, code, message_matcher, "") {
  const absl::Status& status = arg.status();
  if (status.code() != code) {
    *result_listener << "code is " << absl::StatusCodeToString(status.code()) << ": "
                     << status.message();
    return false;
  }
  return ::testing::ExplainMatchResult(message_matcher, std::string(status.message()),
                                       result_listener);
}

constexpr double kTol = 1e-12;
using Batch = std::vector<std::vector<double>>;

Batch Outcome(AdvantageEstimator estimator, const Batch& rewards) {
  absl::StatusOr<Batch> out = ComputeOutcomeAdvantages(estimator, rewards);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : Batch{};
}

GaeOptions Options(double gamma, double lambda_policy, double lambda_critic,
                   double length_adaptive_alpha = 0.0) {
  GaeOptions options;
  options.gamma = gamma;
  options.lambda_policy = lambda_policy;
  options.lambda_critic = lambda_critic;
  options.length_adaptive_alpha = length_adaptive_alpha;
  return options;
}

GaeResult Gae(const Batch& rewards, const Batch& values, const GaeOptions& options) {
  absl::StatusOr<GaeResult> out = ComputeGae(rewards, values, options);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : GaeResult{};
}

// ---------------------------------------------------------------------------
// Names.

TEST(AdvantageEstimatorTest, NamesRoundTrip) {
  for (AdvantageEstimator e :
       {AdvantageEstimator::kGrpo, AdvantageEstimator::kDrGrpo, AdvantageEstimator::kRloo,
        AdvantageEstimator::kReinforcePlusPlus, AdvantageEstimator::kReinforcePlusPlusBaseline,
        AdvantageEstimator::kGae}) {
    absl::StatusOr<AdvantageEstimator> parsed = ParseAdvantageEstimator(AdvantageEstimatorName(e));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, e);
    EXPECT_EQ(NeedsCritic(e), e == AdvantageEstimator::kGae);
  }
}

TEST(AdvantageEstimatorTest, UnknownNameListsValidOnes) {
  EXPECT_THAT(ParseAdvantageEstimator("ppo"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'ppo'; valid: grpo, dr_grpo, rloo, reinforce_pp, "
                                 "reinforce_pp_baseline, gae")));
  EXPECT_THAT(ParseAdvantageEstimator("GRPO"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                        HasSubstr("valid: grpo")));
}

TEST(KlEstimatorTest, NamesRoundTripAndUnknownListsValidOnes) {
  for (KlEstimator e : {KlEstimator::kK1, KlEstimator::kK2, KlEstimator::kK3}) {
    absl::StatusOr<KlEstimator> parsed = ParseKlEstimator(KlEstimatorName(e));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, e);
  }
  EXPECT_THAT(ParseKlEstimator("low_var_kl"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("valid: k1, k2, k3")));
}

// ---------------------------------------------------------------------------
// Outcome-reward estimators. Batch: {1, 0, 0, 1}, a uniform {1, 1, 1} and a
// single sample {0.7}.

const Batch kRewards = {{1, 0, 0, 1}, {1, 1, 1}, {0.7}};

TEST(OutcomeAdvantagesTest, Grpo) {
  // {1, 0, 0, 1}: mean 0.5, population std 0.5 -> +-0.5 / (0.5 + 1e-6).
  const double a = 0.5 / (0.5 + 1e-6);
  Batch out = Outcome(AdvantageEstimator::kGrpo, kRewards);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_THAT(out[0], Pointwise(DoubleNear(kTol), {a, -a, -a, a}));
  EXPECT_THAT(out[1], ElementsAre(0.0, 0.0, 0.0));  // uniform: exactly zero
  EXPECT_THAT(out[2], ElementsAre(0.0));            // one sample: exactly zero
}

TEST(OutcomeAdvantagesTest, GrpoUniformGroupIsExactlyZeroDespiteRounding) {
  // mean(0.1, 0.1, 0.1) is not exactly 0.1 in binary; (r - mean) / 1e-6 would
  // leave noise, the uniform check must not.
  Batch out = Outcome(AdvantageEstimator::kGrpo, {{0.1, 0.1, 0.1}});
  EXPECT_THAT(out[0], ElementsAre(0.0, 0.0, 0.0));
}

TEST(OutcomeAdvantagesTest, DrGrpo) {
  // r - 0.5, no division.
  Batch out = Outcome(AdvantageEstimator::kDrGrpo, kRewards);
  EXPECT_THAT(out[0], Pointwise(DoubleNear(kTol), {0.5, -0.5, -0.5, 0.5}));
  EXPECT_THAT(out[1], ElementsAre(0.0, 0.0, 0.0));
  EXPECT_THAT(out[2], ElementsAre(0.0));
}

TEST(OutcomeAdvantagesTest, Rloo) {
  // r_0 = 1 - (0 + 0 + 1) / 3 = 2/3;  r_1 = 0 - (1 + 0 + 1) / 3 = -2/3.
  Batch out = Outcome(AdvantageEstimator::kRloo, kRewards);
  EXPECT_THAT(out[0], Pointwise(DoubleNear(kTol), {2.0 / 3, -2.0 / 3, -2.0 / 3, 2.0 / 3}));
  EXPECT_THAT(out[1], ElementsAre(0.0, 0.0, 0.0));
  EXPECT_THAT(out[2], ElementsAre(0.0));  // no other sample to compare with
  // Unequal group: {3, 1, 2} -> 3 - 1.5, 1 - 2.5, 2 - 2.
  out = Outcome(AdvantageEstimator::kRloo, {{3, 1, 2}});
  EXPECT_THAT(out[0], Pointwise(DoubleNear(kTol), {1.5, -1.5, 0.0}));
}

TEST(OutcomeAdvantagesTest, ReinforcePlusPlusNormalisesOverTheBatch) {
  // {1, 0, 0, 1} and {1, 1, 1}: seven rewards, five 1s and two 0s. Batch mean
  // 5/7; deviations 2/7 (x5) and -5/7 (x2); variance (5 * 4 + 2 * 25) / 49 / 7
  // = 10/49, std sqrt(10)/7. A(1) = (2/7) / (sqrt(10)/7 + eps), A(0) =
  // -(5/7) / (sqrt(10)/7 + eps): about 2/sqrt(10) = 0.632456 and -5/sqrt(10) =
  // -1.581139.
  const double batch_std = std::sqrt(10.0) / 7;
  const double one = (2.0 / 7) / (batch_std + 1e-6);
  const double zero = -(5.0 / 7) / (batch_std + 1e-6);
  EXPECT_NEAR(one, 2 / std::sqrt(10.0), 1e-5);  // eps moves it by ~1.4e-6
  Batch out = Outcome(AdvantageEstimator::kReinforcePlusPlus, {{1, 0, 0, 1}, {1, 1, 1}});
  EXPECT_THAT(out[0], Pointwise(DoubleNear(kTol), {one, zero, zero, one}));
  // The uniform group is not zero: REINFORCE++ has no group baseline.
  EXPECT_THAT(out[1], Pointwise(DoubleNear(kTol), {one, one, one}));
}

TEST(OutcomeAdvantagesTest, ReinforcePlusPlusBaselineCentresPerGroupThenDividesByBatchStd) {
  // Centred: {0.5, -0.5, -0.5, 0.5} and {0, 0, 0}; batch variance of those
  // seven values 4 * 0.25 / 7 = 1/7, std 1/sqrt(7). A = +-0.5 / (1/sqrt(7) +
  // eps), about +-1.322876; the uniform group stays 0.
  const double a = 0.5 / (1 / std::sqrt(7.0) + 1e-6);
  EXPECT_NEAR(a, std::sqrt(7.0) / 2, 1e-5);  // eps moves it by ~3.8e-6
  Batch out = Outcome(AdvantageEstimator::kReinforcePlusPlusBaseline, {{1, 0, 0, 1}, {1, 1, 1}});
  EXPECT_THAT(out[0], Pointwise(DoubleNear(kTol), {a, -a, -a, a}));
  EXPECT_THAT(out[1], ElementsAre(0.0, 0.0, 0.0));
}

TEST(OutcomeAdvantagesTest, SingleSampleGroupsUnderReinforcePlusPlus) {
  // {1} and {0}: batch mean 0.5, std 0.5 -> +-0.5 / (0.5 + eps). With the
  // group baseline every single-sample group centres to 0, so all is 0.
  const double a = 0.5 / (0.5 + 1e-6);
  Batch plain = Outcome(AdvantageEstimator::kReinforcePlusPlus, {{1}, {0}});
  EXPECT_THAT(plain, ElementsAre(Pointwise(DoubleNear(kTol), {a}),
                                 Pointwise(DoubleNear(kTol), {-a})));
  Batch baseline = Outcome(AdvantageEstimator::kReinforcePlusPlusBaseline, {{1}, {0}});
  EXPECT_THAT(baseline, ElementsAre(ElementsAre(0.0), ElementsAre(0.0)));
}

TEST(OutcomeAdvantagesTest, EmptyBatchAndEmptyGroupKeepTheirShape) {
  for (AdvantageEstimator e :
       {AdvantageEstimator::kGrpo, AdvantageEstimator::kDrGrpo, AdvantageEstimator::kRloo,
        AdvantageEstimator::kReinforcePlusPlus, AdvantageEstimator::kReinforcePlusPlusBaseline}) {
    EXPECT_TRUE(Outcome(e, {}).empty()) << AdvantageEstimatorName(e);
    Batch out = Outcome(e, {{}, {1, 0}});
    ASSERT_EQ(out.size(), 2u) << AdvantageEstimatorName(e);
    EXPECT_TRUE(out[0].empty()) << AdvantageEstimatorName(e);
    EXPECT_EQ(out[1].size(), 2u) << AdvantageEstimatorName(e);
  }
}

TEST(OutcomeAdvantagesTest, NonFiniteRewardNamesGroupAndSample) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_THAT(ComputeOutcomeAdvantages(AdvantageEstimator::kGrpo, {{1, 0}, {0, 1, nan}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("group 1, sample 2: reward is nan")));
  EXPECT_THAT(ComputeOutcomeAdvantages(AdvantageEstimator::kRloo, {{-inf}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("group 0, sample 0: reward is -inf")));
}

TEST(OutcomeAdvantagesTest, GaeNeedsACritic) {
  EXPECT_THAT(ComputeOutcomeAdvantages(AdvantageEstimator::kGae, {{1, 0}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ComputeGae")));
}

// ---------------------------------------------------------------------------
// GAE. One 3-token episode: rewards {0, 0, 1}, values {0.2, 0.5, 0.7}.

const Batch kTokenRewards = {{0, 0, 1}};
const Batch kValues = {{0.2, 0.5, 0.7}};

TEST(GaeTest, GammaOneLambdaOneIsMonteCarloReturnMinusValue) {
  // Returns-to-go {1, 1, 1}; A = G - V = {0.8, 0.5, 0.3}; value targets = G.
  GaeResult r = Gae(kTokenRewards, kValues, Options(1, 1, 1));
  EXPECT_THAT(r.advantages[0], Pointwise(DoubleNear(kTol), {0.8, 0.5, 0.3}));
  EXPECT_THAT(r.returns[0], Pointwise(DoubleNear(kTol), {1.0, 1.0, 1.0}));
}

TEST(GaeTest, HandComputedGammaPointNineLambdaHalf) {
  // delta_2 = 1 + 0.9 * 0   - 0.7 = 0.3
  // delta_1 = 0 + 0.9 * 0.7 - 0.5 = 0.13
  // delta_0 = 0 + 0.9 * 0.5 - 0.2 = 0.25
  // gamma * lambda = 0.45:
  // A_2 = 0.3;  A_1 = 0.13 + 0.45 * 0.3 = 0.265;  A_0 = 0.25 + 0.45 * 0.265 = 0.36925
  // R = A + V = {0.56925, 0.765, 1.0}
  GaeResult r =
      Gae(kTokenRewards, kValues, Options(0.9, 0.5, 0.5));
  EXPECT_THAT(r.advantages[0], Pointwise(DoubleNear(kTol), {0.36925, 0.265, 0.3}));
  EXPECT_THAT(r.returns[0], Pointwise(DoubleNear(kTol), {0.56925, 0.765, 1.0}));
}

TEST(GaeTest, LambdaZeroIsOneStepTdError) {
  // A_t = delta_t from the case above; R_t = r_t + gamma * V_{t+1}.
  GaeResult r =
      Gae(kTokenRewards, kValues, Options(0.9, 0, 0));
  EXPECT_THAT(r.advantages[0], Pointwise(DoubleNear(kTol), {0.25, 0.13, 0.3}));
  EXPECT_THAT(r.returns[0], Pointwise(DoubleNear(kTol), {0.45, 0.63, 1.0}));
}

TEST(GaeTest, DecoupledLambdaGivesPolicyAdvantagesAndMonteCarloValueTargets) {
  // VAPO: lambda_policy 0.5 gives the advantages of the hand-computed case;
  // lambda_critic 1 gives the discounted returns {0.81, 0.9, 1}, which do not
  // depend on the values at all.
  const GaeOptions options = Options(0.9, 0.5, 1.0);
  GaeResult r = Gae(kTokenRewards, kValues, options);
  EXPECT_THAT(r.advantages[0], Pointwise(DoubleNear(kTol), {0.36925, 0.265, 0.3}));
  EXPECT_THAT(r.returns[0], Pointwise(DoubleNear(kTol), {0.81, 0.9, 1.0}));
  GaeResult other_values = Gae(kTokenRewards, {{-3, 7, 0.25}}, options);
  EXPECT_THAT(other_values.returns[0], Pointwise(DoubleNear(kTol), {0.81, 0.9, 1.0}));
}

TEST(GaeTest, KlPenaltyInTheReward) {
  // reward 1, per-token KL {0.1, 0.2, 0}, coef 0.5 -> {-0.05, -0.1, 1}.
  absl::StatusOr<std::vector<double>> rewards = TokenRewardsWithKlPenalty(1.0, {0.1, 0.2, 0}, 0.5);
  ASSERT_TRUE(rewards.ok()) << rewards.status();
  EXPECT_THAT(*rewards, Pointwise(DoubleNear(kTol), {-0.05, -0.1, 1.0}));
  // gamma = lambda = 1: A_t = sum of rewards from t on minus V_t:
  // {0.85 - 0.2, 0.9 - 0.5, 1 - 0.7}.
  GaeResult r = Gae({*rewards}, kValues, Options(1, 1, 1));
  EXPECT_THAT(r.advantages[0], Pointwise(DoubleNear(kTol), {0.65, 0.4, 0.3}));
  EXPECT_THAT(TokenRewardsWithKlPenalty(1.0, {}, 0.5),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty response")));
}

TEST(GaeTest, LengthAdaptiveLambda) {
  EXPECT_DOUBLE_EQ(LengthAdaptiveLambda(100, 0.05), 0.8);  // 1 - 1/5
  EXPECT_DOUBLE_EQ(LengthAdaptiveLambda(40, 0.05), 0.5);   // 1 - 1/2
  EXPECT_DOUBLE_EQ(LengthAdaptiveLambda(1000, 0.05), 0.98);
  EXPECT_EQ(LengthAdaptiveLambda(20, 0.05), 0.0);  // alpha * l = 1
  EXPECT_EQ(LengthAdaptiveLambda(10, 0.05), 0.0);  // 1 - 2 = -1, clamped
  EXPECT_EQ(LengthAdaptiveLambda(0, 0.05), 0.0);
  EXPECT_EQ(LengthAdaptiveLambda(100, 0.0), 0.0);
}

TEST(GaeTest, LengthAdaptiveAlphaSetsEachSamplesPolicyLambda) {
  // A 100-token sample gets lambda 0.8, a 10-token one lambda 0; the value
  // targets keep lambda_critic.
  std::vector<double> long_rewards(100, 0.0), long_values(100, 0.3);
  long_rewards.back() = 1.0;
  std::vector<double> short_rewards(10, 0.0), short_values(10, 0.6);
  short_rewards.back() = 1.0;
  const Batch rewards = {long_rewards, short_rewards};
  const Batch values = {long_values, short_values};
  GaeResult adaptive = Gae(rewards, values,
                           Options(1, 0.95, 1, 0.05));
  GaeResult fixed_long = Gae({long_rewards}, {long_values},
                             Options(1, 0.8, 1));
  GaeResult fixed_short = Gae({short_rewards}, {short_values},
                              Options(1, 0.0, 1));
  EXPECT_EQ(adaptive.advantages[0], fixed_long.advantages[0]);
  EXPECT_EQ(adaptive.advantages[1], fixed_short.advantages[0]);
  EXPECT_EQ(adaptive.returns[0], fixed_long.returns[0]);
  EXPECT_EQ(adaptive.returns[1], fixed_short.returns[0]);
  EXPECT_NEAR(adaptive.returns[1][0], 1.0, kTol);  // lambda_critic = 1: Monte Carlo
}

TEST(GaeTest, EmptySequenceAndEmptyBatch) {
  GaeResult r = Gae({{}}, {{}}, {});
  ASSERT_EQ(r.advantages.size(), 1u);
  EXPECT_TRUE(r.advantages[0].empty());
  EXPECT_TRUE(Gae({}, {}, {}).advantages.empty());
}

TEST(GaeTest, MismatchedLengthsNameTheSampleAndBothLengths) {
  EXPECT_THAT(ComputeGae({{0, 1}, {0, 0, 1}}, {{0.1, 0.2}, {0.1, 0.2}}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("sample 1: 3 rewards but 2 values")));
  EXPECT_THAT(ComputeGae({{1}, {1}}, {{0.5}}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("2 sequences of rewards but 1 of values")));
}

TEST(GaeTest, NonFiniteInputsNameSampleAndToken) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THAT(ComputeGae({{0, 1}, {0, nan}}, {{0, 0}, {0, 0}}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("sample 1, token 1: reward is nan")));
  EXPECT_THAT(ComputeGae({{0, 1}}, {{std::numeric_limits<double>::infinity(), 0}}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("sample 0, token 0: value is inf")));
}

TEST(GaeTest, OutOfRangeParametersNameTheParameter) {
  const Batch r = {{1}};
  const Batch v = {{0}};
  EXPECT_THAT(ComputeGae(r, v, Options(1.5, 1, 1)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("gamma must be in [0, 1], got 1.5")));
  EXPECT_THAT(ComputeGae(r, v, Options(1, -0.1, 1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lambda_policy")));
  EXPECT_THAT(ComputeGae(r, v, Options(1, 1, std::numeric_limits<double>::quiet_NaN())),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lambda_critic")));
  EXPECT_THAT(ComputeGae(r, v, Options(1, 1, 1, -1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("length_adaptive_alpha")));
}

// ---------------------------------------------------------------------------
// Whitening.

TEST(WhitenAdvantagesTest, UsesOnlyValidTokens) {
  // Valid tokens {1, 2, 3, 4}: mean 2.5, population variance 1.25. The masked
  // 99 neither counts nor survives.
  absl::StatusOr<Batch> out = WhitenAdvantages({{1, 2, 3}, {4, 99}}, {{1, 1, 1}, {1, 0}});
  ASSERT_TRUE(out.ok()) << out.status();
  const double s = std::sqrt(1.25) + 1e-6;
  EXPECT_THAT((*out)[0], Pointwise(DoubleNear(kTol), {-1.5 / s, -0.5 / s, 0.5 / s}));
  EXPECT_THAT((*out)[1], Pointwise(DoubleNear(kTol), {1.5 / s, 0.0}));
}

TEST(WhitenAdvantagesTest, UniformOrFullyMaskedBatchIsZero) {
  absl::StatusOr<Batch> out = WhitenAdvantages({{0.1, 0.1}, {0.1, 5}}, {{1, 1}, {1, 0}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(*out, ElementsAre(ElementsAre(0.0, 0.0), ElementsAre(0.0, 0.0)));
  out = WhitenAdvantages({{3}}, {{0}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(*out, ElementsAre(ElementsAre(0.0)));
}

TEST(WhitenAdvantagesTest, MismatchedMaskNamesTheSample) {
  EXPECT_THAT(WhitenAdvantages({{1, 2, 3}, {4}}, {{1, 1}, {1}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("sample 0: 3 advantages but 2 mask entries")));
}

// ---------------------------------------------------------------------------
// KL estimators.

TEST(KlEstimatorTest, HandComputedValues) {
  // lr = log q - log p = -0.5 - (-1) = 0.5.
  EXPECT_NEAR(KlEstimate(KlEstimator::kK1, -1.0, -0.5), -0.5, kTol);
  EXPECT_NEAR(KlEstimate(KlEstimator::kK2, -1.0, -0.5), 0.125, kTol);
  EXPECT_NEAR(KlEstimate(KlEstimator::kK3, -1.0, -0.5), std::exp(0.5) - 1.5, kTol);
}

TEST(KlEstimatorTest, ZeroWhenPolicyEqualsReference) {
  for (double logp : {0.0, -1e-9, -0.3, -7.0, -60.0}) {
    for (KlEstimator e : {KlEstimator::kK1, KlEstimator::kK2, KlEstimator::kK3}) {
      EXPECT_EQ(KlEstimate(e, logp, logp), 0.0) << KlEstimatorName(e) << " at " << logp;
    }
  }
}

TEST(KlEstimatorTest, K2AndK3AreNeverNegative) {
  for (int i = -3000; i <= 3000; ++i) {
    const double lr = i * 0.01;
    EXPECT_GE(KlEstimate(KlEstimator::kK3, -5.0, -5.0 + lr), 0.0) << lr;
    EXPECT_GE(KlEstimate(KlEstimator::kK2, -5.0, -5.0 + lr), 0.0) << lr;
  }
  for (double tiny : {1e-300, -1e-300, 1e-17, -1e-17, 1e-9, -1e-9}) {
    EXPECT_GE(KlEstimate(KlEstimator::kK3, 0.0, tiny), 0.0) << tiny;
  }
  std::mt19937_64 gen(6);
  std::uniform_real_distribution<double> logprob(-40.0, 0.0);
  for (int i = 0; i < 10000; ++i) {
    const double logp = logprob(gen), logq = logprob(gen);
    EXPECT_GE(KlEstimate(KlEstimator::kK3, logp, logq), 0.0) << logp << " " << logq;
  }
}

// Samples from a categorical p by inverse CDF on mt19937_64's raw output,
// which the standard fixes bit for bit (std::discrete_distribution does not).
struct SampleMoments {
  double mean = 0.0;
  double variance = 0.0;
};

SampleMoments EstimatorMoments(KlEstimator e, const std::vector<double>& p,
                               const std::vector<double>& q, int n, uint64_t seed) {
  std::mt19937_64 gen(seed);
  double sum = 0.0, sq = 0.0;
  for (int i = 0; i < n; ++i) {
    const double u = static_cast<double>(gen() >> 11) * 0x1p-53;
    size_t k = 0;
    for (double c = p[0]; u >= c && k + 1 < p.size(); c += p[++k]) {
    }
    const double x = KlEstimate(e, std::log(p[k]), std::log(q[k]));
    sum += x;
    sq += x * x;
  }
  SampleMoments m;
  m.mean = sum / n;
  m.variance = sq / n - m.mean * m.mean;
  return m;
}

TEST(KlEstimatorTest, K1AndK3AreUnbiasedK2IsCloseButBiased) {
  const std::vector<double> p = {0.5, 0.3, 0.2};
  const std::vector<double> q = {0.4, 0.4, 0.2};
  double kl = 0.0, k2_expectation = 0.0;
  for (size_t k = 0; k < p.size(); ++k) {
    kl += p[k] * std::log(p[k] / q[k]);
    k2_expectation += p[k] * 0.5 * std::pow(std::log(q[k] / p[k]), 2);
  }
  // KL = 0.5 ln 1.25 + 0.3 ln 0.75 = 0.1115718 - 0.0863046 = 0.0252672.
  EXPECT_NEAR(kl, 0.0252672, 1e-7);

  constexpr int kSamples = 200000;
  const SampleMoments k1 = EstimatorMoments(KlEstimator::kK1, p, q, kSamples, 11);
  const SampleMoments k2 = EstimatorMoments(KlEstimator::kK2, p, q, kSamples, 11);
  const SampleMoments k3 = EstimatorMoments(KlEstimator::kK3, p, q, kSamples, 11);
  // Five standard errors of the sample mean.
  auto tolerance = [&](const SampleMoments& m) { return 5 * std::sqrt(m.variance / kSamples); };
  EXPECT_NEAR(k1.mean, kl, tolerance(k1));
  EXPECT_NEAR(k3.mean, kl, tolerance(k3));
  EXPECT_NEAR(k2.mean, k2_expectation, tolerance(k2));
  // k2 is biased: its expectation is not KL, but for distributions this close
  // it is within a few percent of it.
  EXPECT_GT(std::abs(k2_expectation - kl), 1e-4);
  EXPECT_LT(std::abs(k2.mean - kl), 0.1 * kl);
  // k3's point: same expectation as k1 with far less variance near p = q.
  EXPECT_LT(k3.variance, 0.1 * k1.variance);
}

TEST(KlEstimatorTest, TokenKlMatchesScalarAndChecksShapes) {
  absl::StatusOr<Batch> out =
      TokenKl(KlEstimator::kK3, {{-1.0, -2.0}, {-0.5}}, {{-0.5, -2.0}, {-3.0}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(*out, ElementsAre(ElementsAre(KlEstimate(KlEstimator::kK3, -1.0, -0.5), 0.0),
                                ElementsAre(KlEstimate(KlEstimator::kK3, -0.5, -3.0))));
  EXPECT_THAT(TokenKl(KlEstimator::kK1, {{-1.0}, {-1.0, -2.0}}, {{-1.0}, {-1.0}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("sample 1: 2 policy logprobs but 1 reference logprobs")));
}

}  // namespace
}  // namespace rlpost
