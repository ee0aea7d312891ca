#include "rollout/spec_tuner.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace rlpost {
namespace {

// A synthetic machine: a step of `batch` rows with draft length k costs
// fixed * (1 + fixed_slope * k) + base * batch * (1 + slope * k) seconds,
// each drafted token is accepted with probability alpha (geometric runs),
// every row has a draft.
struct Machine {
  double base = 1e-3, slope = 0.1, alpha = 0.7;
  double fixed = 0, fixed_slope = 0;
  std::mt19937_64 rng{7};

  // Runs `steps` steps at `batch` rows; returns tokens emitted per second.
  double Run(SpecTuner* tuner, int64_t batch, int k_max, int steps, int* drafted_steps) {
    double tokens = 0, seconds = 0;
    std::uniform_real_distribution<double> u(0, 1);
    for (int s = 0; s < steps; ++s) {
      const int k = tuner->Choose(batch, k_max);
      int64_t accepted = 0, rejections = 0;
      double emitted = 0;
      for (int64_t r = 0; r < batch; ++r) {
        int a = 0;
        while (a < k && u(rng) < alpha) ++a;
        accepted += a;
        if (a < k) ++rejections;
        emitted += a + 1;
      }
      // 5% timing noise.
      const double t = (fixed * (1 + fixed_slope * k) + base * batch * (1 + slope * k)) *
                       (0.95 + 0.1 * u(rng));
      tuner->Record(batch, k, t, k > 0 ? batch : 0, accepted, rejections);
      tokens += emitted;
      seconds += t;
      if (k > 0) ++*drafted_steps;
    }
    return tokens / seconds;
  }
};

TEST(SpecTunerTest, DraftsLongWhenDraftingIsCheapAndAccepted) {
  SpecTuner tuner;
  Machine m;
  m.slope = 0.05;
  m.alpha = 0.8;
  int drafted = 0;
  m.Run(&tuner, 1, 4, 200, &drafted);
  EXPECT_EQ(tuner.Best(1, 4), 4);
  drafted = 0;
  const double rate = m.Run(&tuner, 1, 4, 1000, &drafted);
  // k = 4: (1 - 0.8^5) / 0.2 = 3.36 tokens per 1.2 cost units.
  EXPECT_GT(rate, 0.9 * 3.36 / (1.2 * m.base));
  EXPECT_GT(drafted, 950);
}

TEST(SpecTunerTest, TurnsSpeculationOffWhereItDoesNotPay) {
  SpecTuner tuner;
  Machine m;
  m.slope = 0.9;  // every draft costs almost a forward
  m.alpha = 0.3;
  int drafted = 0;
  m.Run(&tuner, 32, 4, 200, &drafted);
  EXPECT_EQ(tuner.Best(32, 4), 0);
  drafted = 0;
  const double rate = m.Run(&tuner, 32, 4, 2000, &drafted);
  // Re-measuring the other lengths costs little: within 2% of plain.
  EXPECT_GT(rate, 0.98 / m.base);
  EXPECT_LT(drafted, 2000 / 50);
}

TEST(SpecTunerTest, FollowsAcceptanceWhenItChanges) {
  SpecTuner tuner;
  Machine m;
  m.slope = 0.1;
  m.alpha = 0.9;
  int drafted = 0;
  m.Run(&tuner, 8, 4, 300, &drafted);
  EXPECT_GT(tuner.Best(8, 4), 0);
  m.alpha = 0.0;  // the policy moved away from the drafter
  m.Run(&tuner, 8, 4, 1500, &drafted);
  EXPECT_EQ(tuner.Best(8, 4), 0);
}

TEST(SpecTunerTest, PlainDecodingIsMeasuredFirstAndNewBatchSizesStartFromNeighbours) {
  SpecTuner tuner;
  EXPECT_EQ(tuner.Choose(4, 4), 0);
  EXPECT_EQ(tuner.Rate(4, 0), -1);
  tuner.Record(4, 0, 0.004, 0, 0, 0);
  EXPECT_NEAR(tuner.Rate(4, 0), 1000.0, 1e-6);  // one token per row per 1 ms
  // Batch 5 shares the octave 4..7; batch 9 (octave 8..15) measures its
  // own costs, plain decoding first.
  EXPECT_NEAR(tuner.Rate(5, 0), 1000.0, 1e-6);
  EXPECT_EQ(tuner.Rate(9, 0), -1);
  EXPECT_EQ(tuner.Choose(9, 4), 0);
  EXPECT_EQ(tuner.Rate(9, 0), -1);
  EXPECT_EQ(tuner.Choose(1, 0), 0);
}

// Drafting pays at batch 1 (the step's fixed cost dominates) but not at
// batch 16 (verifying k + 1 positions per row dominates): the batch-16
// octave must not inherit batch 1's costs and keep drafting.
TEST(SpecTunerTest, ALargerBatchDoesNotInheritASmallerBatchsCosts) {
  SpecTuner tuner;
  Machine m;
  m.fixed = 1e-3;
  m.fixed_slope = 0.05;
  m.base = 1e-4;
  m.slope = 1.2;
  int drafted = 0;
  m.Run(&tuner, 1, 4, 300, &drafted);
  EXPECT_GT(tuner.Best(1, 4), 0);
  drafted = 0;
  m.Run(&tuner, 16, 4, 300, &drafted);
  EXPECT_EQ(tuner.Best(16, 4), 0);
  // The warm-up measures k = 1..4 three times each; the rest is plain but
  // for the occasional re-measurement.
  EXPECT_LT(drafted, 30);
}

// Load from a neighbour only adds time. Plain decoding's sparse samples take
// their minimum (a burst must not make it look slow for hundreds of steps);
// a draft length's dense samples their median (one slow step is ignored).
TEST(SpecTunerTest, PlainDecodingTakesItsFastestRecentStepDraftingItsMedian) {
  SpecTuner tuner;
  // Batch 8: 8 ms per row while loaded, 1 ms once.
  for (int i = 0; i < 6; ++i) tuner.Record(8, 0, 8 * 0.008, 0, 0, 0);
  tuner.Record(8, 0, 8 * 0.001, 0, 0, 0);
  EXPECT_NEAR(tuner.Rate(8, 0), 1000.0, 1e-6);
  // k = 1: six steps at 2 ms per row, one at 20 ms; acceptance 1/2 (one
  // accepted, one rejection per row) with the prior.
  for (int i = 0; i < 6; ++i) tuner.Record(8, 1, 8 * 0.002, 8, 8, 8);
  tuner.Record(8, 1, 8 * 0.020, 8, 8, 8);
  const double rate1 = tuner.Rate(8, 1);
  EXPECT_GT(rate1, 0.9 * 1.5 / 0.002 * 0.9);  // about 1.5 tokens per 2 ms, not per 20
  EXPECT_LT(rate1, 1.1 * 1.7 / 0.002);
}

}  // namespace
}  // namespace rlpost
