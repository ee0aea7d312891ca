#include "rollout/sampler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <vector>

namespace rlpost {
namespace {

using ::testing::HasSubstr;

void ExpectRejected(const SamplingOptions& o, int64_t vocab, const std::string& parameter) {
  const absl::Status s = ValidateSamplingOptions(o, vocab);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << parameter << ": " << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(parameter));
}

TEST(SamplerTest, ValidateAcceptsTheDefaultsAndBoundaries) {
  SamplingOptions o;
  EXPECT_TRUE(ValidateSamplingOptions(o, 10).ok());
  o.temperature = 0.0;
  o.top_p = 0.0;
  o.stop_token_ids = {0, 9};
  o.stop_strings = {"\n\n"};
  EXPECT_TRUE(ValidateSamplingOptions(o, 10).ok());
  o.temperature = 1000.0;
  o.top_p = 1.0;
  EXPECT_TRUE(ValidateSamplingOptions(o, 10).ok());
}

TEST(SamplerTest, ValidateNamesEachOutOfRangeParameter) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (double t : {nan, inf, -0.5, 1000.5}) {
    SamplingOptions o;
    o.temperature = t;
    ExpectRejected(o, 10, "temperature");
  }
  for (double p : {nan, -0.1, 1.01}) {
    SamplingOptions o;
    o.top_p = p;
    ExpectRejected(o, 10, "top_p");
  }
  SamplingOptions o;
  o.top_k = -1;
  ExpectRejected(o, 10, "top_k");
  o = SamplingOptions();
  o.max_new_tokens = -3;
  ExpectRejected(o, 10, "max_new_tokens");
  for (int id : {-1, 10}) {
    o = SamplingOptions();
    o.stop_token_ids = {3, id};
    ExpectRejected(o, 10, "stop_token_ids");
    ExpectRejected(o, 10, std::to_string(id));
  }
  o = SamplingOptions();
  o.stop_strings = {"</answer>", ""};
  ExpectRejected(o, 10, "stop_strings");
}

TEST(SamplerTest, GreedyPicksArgmaxWithLogprobZero) {
  const std::vector<float> logits = {0.1f, 2.0f, 1.9f, -3.0f};
  SamplingOptions o;
  o.temperature = 0.0;
  EXPECT_TRUE(IsGreedy(o));
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const SampledToken s = SampleToken(logits.data(), 4, o, seed, static_cast<int64_t>(seed));
    EXPECT_EQ(s.token, 1);
    EXPECT_EQ(s.logprob, 0.0f);
  }
  EXPECT_EQ(SamplingDistribution(logits.data(), 4, o), std::vector<double>({0, 1, 0, 0}));
  const std::vector<float> tie = {0.5f, 2.0f, 2.0f};
  EXPECT_EQ(SamplingDistribution(tie.data(), 3, o), std::vector<double>({0, 1, 0}));
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

TEST(SamplerTest, RawLogprobIsLogSoftmaxIgnoringSamplingOptions) {
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f, -1.0f, 0.5f};
  double sum = 0.0;
  for (float l : logits) sum += std::exp(static_cast<double>(l));
  for (int i = 0; i < 5; ++i) {
    EXPECT_NEAR(RawLogprob(logits.data(), 5, i), logits[i] - std::log(sum), 1e-6) << i;
  }
  // Large logits do not overflow.
  const std::vector<float> big = {1000.0f, 999.0f};
  EXPECT_NEAR(RawLogprob(big.data(), 2, 1), -1.0 - std::log1p(std::exp(-1.0)), 1e-5);
}

TEST(SamplerTest, TokenUniformIsInRangeAndDiffersPerSeedPositionAndPurpose) {
  const RandomPurpose purposes[] = {RandomPurpose::kSample, RandomPurpose::kAccept,
                                    RandomPurpose::kResidual, RandomPurpose::kDraft};
  std::set<double> seen;
  int draws = 0;
  double sum = 0.0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    for (int64_t position = 0; position < 50; ++position) {
      for (RandomPurpose purpose : purposes) {
        const double u = TokenUniform(seed, position, purpose);
        ASSERT_GE(u, 0.0);
        ASSERT_LT(u, 1.0);
        EXPECT_EQ(u, TokenUniform(seed, position, purpose));  // a pure function
        seen.insert(u);
        sum += u;
        ++draws;
      }
    }
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(draws));  // no two streams collide
  EXPECT_NEAR(sum / draws, 0.5, 0.03);
}

TEST(SamplerTest, SampleFromSkipsZeroMassAndHonoursTotal) {
  const std::vector<double> p = {0.0, 0.25, 0.0, 0.75, 0.0};
  EXPECT_EQ(SampleFrom(p, 0.0), 1);
  EXPECT_EQ(SampleFrom(p, 0.2499), 1);
  EXPECT_EQ(SampleFrom(p, 0.25), 3);
  EXPECT_EQ(SampleFrom(p, std::nextafter(1.0, 0.0)), 3);
  const std::vector<double> unnormalised = {2.0, 0.0, 6.0};
  EXPECT_EQ(SampleFrom(unnormalised, 0.24, 8.0), 0);
  EXPECT_EQ(SampleFrom(unnormalised, 0.26, 8.0), 2);
}

TEST(SamplerTest, EmpiricalFrequenciesMatchAndLogprobsAreExact) {
  std::vector<float> logits = {0.0f, 1.0f, 2.0f, -1.0f, 0.5f};
  SamplingOptions o;
  o.temperature = 1.3;
  o.top_k = 4;
  std::vector<double> p = SamplingDistribution(logits.data(), 5, o);
  const int n = 40000;
  std::vector<int> counts(5, 0);
  for (int i = 0; i < n; ++i) {
    // Seeds and positions both vary: each pair is its own draw.
    SampledToken s = SampleToken(logits.data(), 5, o, static_cast<uint64_t>(i / 100), i % 100);
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

TEST(SamplerTest, SampleTokenIsAPureFunctionOfSeedAndPosition) {
  const std::vector<float> logits = {0.2f, 0.1f, 0.0f, -0.1f, 0.3f, 0.05f};
  SamplingOptions o;
  int differs_by_position = 0, differs_by_seed = 0;
  for (int64_t position = 0; position < 200; ++position) {
    const int a = SampleToken(logits.data(), 6, o, 5, position).token;
    EXPECT_EQ(a, SampleToken(logits.data(), 6, o, 5, position).token);
    EXPECT_EQ(a, SampleFrom(SamplingDistribution(logits.data(), 6, o),
                            TokenUniform(5, position, RandomPurpose::kSample)));
    differs_by_position += a != SampleToken(logits.data(), 6, o, 5, position + 1).token;
    differs_by_seed += a != SampleToken(logits.data(), 6, o, 6, position).token;
  }
  EXPECT_GT(differs_by_position, 100);
  EXPECT_GT(differs_by_seed, 100);
}

TEST(SamplerTest, SampleSeedsDifferAndAreStable) {
  EXPECT_EQ(SampleSeed(7, 0), SampleSeed(7, 0));
  EXPECT_NE(SampleSeed(7, 0), SampleSeed(7, 1));
  EXPECT_NE(SampleSeed(7, 0), SampleSeed(8, 0));
}

}  // namespace
}  // namespace rlpost
