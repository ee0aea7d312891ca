#include "reward/reward.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

namespace rlpost {
namespace {

TEST(RewardTest, WellFormedAnswer) {
  EXPECT_TRUE(HasWellFormedAnswer("so \\boxed{12}"));
  EXPECT_TRUE(HasWellFormedAnswer("x \\boxed{\\frac{1}{2}}."));
  EXPECT_FALSE(HasWellFormedAnswer("no answer"));
  EXPECT_FALSE(HasWellFormedAnswer("\\boxed{1} and \\boxed{2}"));
  EXPECT_FALSE(HasWellFormedAnswer("\\boxed{12"));
  EXPECT_FALSE(HasWellFormedAnswer("\\boxed{12} then more words"));
}

TEST(RewardTest, ThinkAnswerFormat) {
  EXPECT_EQ(FormatScore("<think>2+2 is 4</think> \\boxed{4}", true), 1.0);
  // The chat template opened the think block in the prompt.
  EXPECT_EQ(FormatScore("2+2 is 4\n</think>\nThe answer is \\boxed{4}.", true), 1.0);
  EXPECT_EQ(FormatScore("\\boxed{4}", true), 0.0);                        // no reasoning block
  EXPECT_EQ(FormatScore("<think></think>\\boxed{4}", true), 0.0);         // empty reasoning
  EXPECT_EQ(FormatScore("<think>a</think><think>b</think>\\boxed{4}", true), 0.0);
  EXPECT_EQ(FormatScore("words <think>a</think>\\boxed{4}", true), 0.0);  // not leading
  EXPECT_EQ(FormatScore("<think>a \\boxed{4}</think> so 4", true), 0.0);  // answer inside
  EXPECT_EQ(FormatScore("\\boxed{4}", false), 1.0);
}

TEST(RewardTest, SoftOverlongPenaltyFollowsDapo) {
  // L_max 100, L_cache 20: free up to 80, linear to -1 at 100, -1 beyond.
  EXPECT_DOUBLE_EQ(SoftOverlongPenalty(10, 100, 20), 0.0);
  EXPECT_DOUBLE_EQ(SoftOverlongPenalty(80, 100, 20), 0.0);
  EXPECT_DOUBLE_EQ(SoftOverlongPenalty(85, 100, 20), -0.25);
  EXPECT_DOUBLE_EQ(SoftOverlongPenalty(90, 100, 20), -0.5);
  EXPECT_DOUBLE_EQ(SoftOverlongPenalty(100, 100, 20), -1.0);
  EXPECT_DOUBLE_EQ(SoftOverlongPenalty(101, 100, 20), -1.0);
  EXPECT_DOUBLE_EQ(SoftOverlongPenalty(100, 100, 0), 0.0);
  EXPECT_DOUBLE_EQ(SoftOverlongPenalty(101, 100, 0), -1.0);
}

TEST(RewardTest, GroupLengthRewardFollowsKimi) {
  // min 10, max 50: lambda = 0.5 - (len - 10) / 40.
  const std::vector<double> r =
      GroupLengthRewards({10, 20, 50, 30, 10}, {true, true, true, false, false});
  EXPECT_THAT(r, ::testing::ElementsAre(0.5, 0.25, -0.5, 0.0, 0.0));
  // Wrong answers keep only the negative side: 0.5 - 40/40 = -0.5.
  EXPECT_THAT(GroupLengthRewards({10, 50}, {false, false}), ::testing::ElementsAre(0.0, -0.5));
  EXPECT_THAT(GroupLengthRewards({7, 7, 7}, {true, false, true}),
              ::testing::ElementsAre(0.0, 0.0, 0.0));
}

TEST(RewardTest, RepetitionPenaltyCountsRepeatedNgrams) {
  const std::vector<int32_t> distinct = {1, 2, 3, 4, 5, 6};
  EXPECT_DOUBLE_EQ(RepetitionPenalty(distinct.data(), distinct.size(), 2), 0.0);
  // Bigrams of 1 2 1 2 1 2: (1,2) (2,1) (1,2) (2,1) (1,2): 3 repeats of 5.
  const std::vector<int32_t> loop = {1, 2, 1, 2, 1, 2};
  EXPECT_DOUBLE_EQ(RepetitionPenalty(loop.data(), loop.size(), 2), -0.6);
  const std::vector<int32_t> same = {9, 9, 9, 9, 9};
  EXPECT_DOUBLE_EQ(RepetitionPenalty(same.data(), same.size(), 3), -2.0 / 3.0);
  EXPECT_DOUBLE_EQ(RepetitionPenalty(same.data(), 2, 3), 0.0);  // shorter than n
}

TEST(RewardTest, CompositionIsTheWeightedSumOfEveryPart) {
  RewardConfig c;
  c.correct = 2.0;
  c.format = 0.5;
  c.overlong = 1.0;
  c.overlong_max_tokens = 10;
  c.overlong_buffer_tokens = 4;
  c.length = 0.2;
  c.repetition = 0.1;
  c.repetition_ngram = 2;
  const std::vector<int32_t> short_tokens = {1, 2, 3, 4};                    // 4 tokens
  const std::vector<int32_t> long_tokens = {1, 2, 1, 2, 1, 2, 1, 2};         // 8 tokens
  std::vector<RewardSampleInput> group(2);
  group[0] = {1.0, true, "so \\boxed{7}", short_tokens.data(), short_tokens.size()};
  group[1] = {0.0, false, "rambling", long_tokens.data(), long_tokens.size()};
  std::vector<SampleReward> r = ComputeGroupRewards(c, group);
  ASSERT_EQ(r.size(), 2u);
  std::vector<std::string> names;
  for (const RewardPart& p : r[0].parts) names.push_back(p.name);
  EXPECT_THAT(names,
              ::testing::ElementsAre("correctness", "format", "overlong", "length", "repetition"));
  // Sample 0: 2*1 + 0.5*1 + 1*0 (4 <= 6) + 0.2*0.5 (shortest, correct) + 0.1*0.
  EXPECT_DOUBLE_EQ(r[0].total, 2.0 + 0.5 + 0.0 + 0.1 + 0.0);
  // Sample 1: 0 + 0 + 1*(6-8)/4 + 0.2*min(0, -0.5) + 0.1*(-5/7).
  // Bigrams of 8 tokens: 7, distinct (1,2) (2,1): 5 repeats.
  EXPECT_DOUBLE_EQ(r[1].parts[2].value, -0.5);
  EXPECT_DOUBLE_EQ(r[1].parts[3].value, -0.5);
  EXPECT_DOUBLE_EQ(r[1].parts[4].value, -5.0 / 7.0);
  EXPECT_DOUBLE_EQ(r[1].total, -0.5 - 0.1 - 0.1 * 5.0 / 7.0);

  // A plugin part adds weight * value; weights of 0 leave parts out.
  r[0].Add("plugin:bonus", 0.5, 3.0);
  EXPECT_DOUBLE_EQ(r[0].total, 2.6 + 1.5);
  RewardConfig only_correct;
  std::vector<SampleReward> plain = ComputeGroupRewards(only_correct, group);
  ASSERT_EQ(plain[0].parts.size(), 1u);
  EXPECT_EQ(plain[0].parts[0].name, "correctness");
  EXPECT_DOUBLE_EQ(plain[0].total, 1.0);
  EXPECT_DOUBLE_EQ(plain[1].total, 0.0);
}

}  // namespace
}  // namespace rlpost
