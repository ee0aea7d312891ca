#include "rollout/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace rlpost {
namespace {

TEST(SamplerTest, GreedyPicksArgmax) {
  std::vector<float> logits = {0.1f, 2.0f, 1.9f, -3.0f};
  SamplingOptions o;
  o.temperature = 0.0;
  std::mt19937_64 rng(1);
  EXPECT_EQ(SampleToken(logits.data(), 4, o, rng).token, 1);
}

TEST(SamplerTest, TopKAndTopPMasks) {
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  SamplingOptions o;
  o.top_k = 2;
  std::vector<double> p = SamplingDistribution(logits.data(), 4, o);
  EXPECT_NEAR(p[0], 0.5 / 0.8, 1e-7);
  EXPECT_NEAR(p[1], 0.3 / 0.8, 1e-7);
  EXPECT_EQ(p[2], 0.0);
  o.top_k = 0;
  o.top_p = 0.9;  // 0.5 + 0.3 + 0.15 reaches 0.95 >= 0.9: three tokens kept
  p = SamplingDistribution(logits.data(), 4, o);
  EXPECT_NEAR(p[2], 0.15 / 0.95, 1e-7);
  EXPECT_EQ(p[3], 0.0);
  o.top_p = 0.5;  // the first token alone reaches 0.5
  p = SamplingDistribution(logits.data(), 4, o);
  EXPECT_NEAR(p[0], 1.0, 1e-9);
}

TEST(SamplerTest, TemperatureSharpens) {
  std::vector<float> logits = {1.0f, 0.0f};
  SamplingOptions o;
  o.temperature = 0.5;
  std::vector<double> p = SamplingDistribution(logits.data(), 2, o);
  EXPECT_NEAR(p[0], std::exp(2.0) / (std::exp(2.0) + 1.0), 1e-7);
}

TEST(SamplerTest, EmpiricalFrequenciesMatchAndLogprobsAreExact) {
  std::vector<float> logits = {0.0f, 1.0f, 2.0f, -1.0f, 0.5f};
  SamplingOptions o;
  o.temperature = 1.3;
  o.top_k = 4;
  std::vector<double> p = SamplingDistribution(logits.data(), 5, o);
  std::mt19937_64 rng(42);
  const int n = 40000;
  std::vector<int> counts(5, 0);
  for (int i = 0; i < n; ++i) {
    SampledToken s = SampleToken(logits.data(), 5, o, rng);
    ++counts[s.token];
    ASSERT_NEAR(s.logprob, std::log(p[s.token]), 1e-6);
  }
  EXPECT_EQ(counts[3], 0);  // masked by top-k
  // Chi-square with 3 degrees of freedom; 16.27 is the 0.999 quantile.
  double chi2 = 0.0;
  for (int i = 0; i < 5; ++i) {
    if (p[i] == 0.0) continue;
    double expected = p[i] * n;
    chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
  }
  EXPECT_LT(chi2, 16.27);
}

TEST(SamplerTest, SampleSeedsDifferAndAreStable) {
  EXPECT_EQ(SampleSeed(7, 0), SampleSeed(7, 0));
  EXPECT_NE(SampleSeed(7, 0), SampleSeed(7, 1));
  EXPECT_NE(SampleSeed(7, 0), SampleSeed(8, 0));
}

}  // namespace
}  // namespace rlpost
