#include "controller/group_advantage.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "controller/problem_cursor.h"

namespace rlpost {
namespace {

using ::testing::ElementsAre;

TEST(GroupAdvantageTest, HalfRightHalfWrongGivesPlusMinusOne) {
  GroupAdvantage g = ComputeGroupAdvantage({1, 0, 0, 1});
  EXPECT_FALSE(g.uniform);
  EXPECT_DOUBLE_EQ(g.mean, 0.5);
  EXPECT_DOUBLE_EQ(g.std, 0.5);
  const double a = 0.5 / (0.5 + 1e-6);
  ASSERT_EQ(g.advantages.size(), 4u);
  EXPECT_DOUBLE_EQ(g.advantages[0], a);
  EXPECT_DOUBLE_EQ(g.advantages[1], -a);
  EXPECT_DOUBLE_EQ(g.advantages[2], -a);
  EXPECT_DOUBLE_EQ(g.advantages[3], a);
}

TEST(GroupAdvantageTest, OneRightOfFourUsesPopulationStd) {
  // mean 0.25; population variance (0.75^2 + 3 * 0.25^2) / 4 = 0.1875.
  GroupAdvantage g = ComputeGroupAdvantage({1, 0, 0, 0});
  const double std = std::sqrt(0.1875);
  EXPECT_DOUBLE_EQ(g.mean, 0.25);
  EXPECT_DOUBLE_EQ(g.std, std);
  EXPECT_NEAR(g.advantages[0], 0.75 / (std + 1e-6), 1e-12);
  EXPECT_NEAR(g.advantages[0], 1.7320468, 1e-6);
  EXPECT_NEAR(g.advantages[1], -0.5773489, 1e-6);
  double sum = 0;
  for (double a : g.advantages) sum += a;
  EXPECT_NEAR(sum, 0.0, 1e-12);
}

TEST(GroupAdvantageTest, ShapedRewards) {
  // Rewards 0.1, 0.6, 1.1: mean 0.6, population std sqrt(1/6).
  GroupAdvantage g = ComputeGroupAdvantage({0.1, 0.6, 1.1});
  EXPECT_NEAR(g.std, std::sqrt(1.0 / 6.0), 1e-12);
  EXPECT_NEAR(g.advantages[0], -1.2247419, 1e-6);
  EXPECT_NEAR(g.advantages[1], 0.0, 1e-12);
  EXPECT_NEAR(g.advantages[2], 1.2247419, 1e-6);
}

TEST(GroupAdvantageTest, EqualRewardsAreUniformWithZeroAdvantages) {
  for (const std::vector<double>& rewards :
       std::vector<std::vector<double>>{{1, 1, 1, 1}, {0, 0}, {0.3}, {}}) {
    GroupAdvantage g = ComputeGroupAdvantage(rewards);
    EXPECT_TRUE(g.uniform);
    EXPECT_EQ(g.advantages.size(), rewards.size());
    for (double a : g.advantages) EXPECT_EQ(a, 0.0);
  }
}

TEST(GroupAdvantageTest, RejectionSamplingDropsUniformGroupsWhenAsked) {
  std::vector<GroupAdvantage> groups = {ComputeGroupAdvantage({1, 0}), ComputeGroupAdvantage({1, 1}),
                                        ComputeGroupAdvantage({0, 0}), ComputeGroupAdvantage({0, 1})};
  RejectionResult skip = SelectGroups(groups, /*skip_uniform=*/true);
  EXPECT_THAT(skip.kept, ElementsAre(0, 3));
  EXPECT_EQ(skip.uniform_groups, 2);
  RejectionResult keep = SelectGroups(groups, /*skip_uniform=*/false);
  EXPECT_THAT(keep.kept, ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(keep.uniform_groups, 2);
}

TEST(ProblemCursorTest, SameSeedSameOrderAndEveryProblemOncePerEpoch) {
  std::vector<Problem> problems(10);
  for (int i = 0; i < 10; ++i) problems[i].id = std::to_string(i);
  ProblemCursor a(&problems, 7), b(&problems, 7), c(&problems, 8);
  std::vector<std::string> ids_a, ids_b, ids_c;
  for (const Problem* p : a.Take(25)) ids_a.push_back(p->id);
  for (int i = 0; i < 5; ++i) {
    for (const Problem* p : b.Take(5)) ids_b.push_back(p->id);
  }
  for (const Problem* p : c.Take(25)) ids_c.push_back(p->id);
  EXPECT_EQ(std::vector<std::string>(ids_a.begin(), ids_a.end()),
            std::vector<std::string>(ids_b.begin(), ids_b.begin() + 25));
  EXPECT_NE(ids_a, ids_c);
  std::vector<std::string> epoch(ids_a.begin(), ids_a.begin() + 10);
  std::sort(epoch.begin(), epoch.end());
  EXPECT_THAT(epoch, ElementsAre("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"));
  // The next epoch is a different permutation.
  EXPECT_NE(std::vector<std::string>(ids_a.begin(), ids_a.begin() + 10),
            std::vector<std::string>(ids_a.begin() + 10, ids_a.begin() + 20));
}

TEST(ProblemCursorTest, EmptySetGivesNothing) {
  std::vector<Problem> none;
  ProblemCursor cursor(&none, 1);
  EXPECT_TRUE(cursor.Take(3).empty());
}

TEST(DeriveSeedTest, DependsOnEveryPart) {
  EXPECT_EQ(DeriveSeed(1, SeedTag::kRlSampling, {2, 3}), DeriveSeed(1, SeedTag::kRlSampling, {2, 3}));
  EXPECT_NE(DeriveSeed(1, SeedTag::kRlSampling, {2, 3}), DeriveSeed(1, SeedTag::kRlSampling, {3, 2}));
  EXPECT_NE(DeriveSeed(1, SeedTag::kRlSampling, {2, 3}), DeriveSeed(2, SeedTag::kRlSampling, {2, 3}));
  EXPECT_NE(DeriveSeed(1, SeedTag::kRlSampling), DeriveSeed(1, SeedTag::kEvalSampling));
}

}  // namespace
}  // namespace rlpost
