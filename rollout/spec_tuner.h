#pragma once
// Adaptive draft length: picks k in [0, k_max] for the next decode step.
//
// The rate of draft length k (tokens per row and second) is predicted as
//   E_k / c_k
// where both factors are measured on this machine, per octave of batch size:
// - c_k, the seconds per row of a whole decode step with draft length k
//   (drafting, the verify forward, the MTP catch-up, sampling): the median
//   of the last kCostWindow steps that used k;
// - E_k, the expected tokens a row emits: with per-token acceptance alpha
//   (maximum likelihood for geometric runs: accepted / (accepted +
//   rejections)) and the share s of rows that had a draft at all (an n-gram
//   lookup may find nothing), E_k = s (1 - alpha^(k+1)) / (1 - alpha) + 1 - s.
// Acceptance falls with the draft position for most drafters (an MTP head or
// a small model drifts further from the policy with every drafted token), so
// alpha is estimated per k from the steps that used k, with the estimate over
// all draft lengths as its prior (weight kAcceptPrior tokens).
// Acceptance is counted in tokens over every drafting step, so it is far less
// noisy than per-step rates, and timings only need to be compared per k.
// k = 0 (plain decoding) is a candidate like any other, so speculation that
// does not pay on this machine, model, batch size and acceptance is switched
// off by measurement; a draft length must beat plain decoding by kDraftMargin
// to be played, so that timing noise does not switch on drafting that only
// breaks even. Each k's cost is measured a few times first; later the
// tuner plays the best k and re-measures the others now and then: those close
// to the best, and plain decoding always, every kRefreshNear steps, of the clearly worse ones only the
// most promising, once per kRefreshFar steps. A batch-size octave seen for the
// first time takes the nearest measured one's acceptance and measures its own
// costs.
//
// Plain C++; not thread-safe (the engine's step thread owns it).

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rlpost {

class SpecTuner {
 public:
  int Choose(int64_t batch, int k_max);
  // The best predicted draft length for this batch size (0 before
  // measurements): what Choose plays when it is not re-measuring.
  int Best(int64_t batch, int k_max);
  // One decode step of `batch` rows with draft length `k` took `seconds`;
  // for k > 0: `rows_drafted` rows had a draft, `accepted` drafted tokens
  // were accepted, `rejections` rows stopped at a rejected draft.
  void Record(int64_t batch, int k, double seconds, int64_t rows_drafted, int64_t accepted,
              int64_t rejections);

  double MeanDraftLength() const { return steps_ > 0 ? k_sum_ / steps_ : 0.0; }
  // Predicted tokens per row-second of draft length k, -1 before its cost is
  // measured (tests, logs).
  double Rate(int64_t batch, int k) const;
  // Per batch-size octave: each k's predicted rate, acceptance and how often
  // it was played (benchmark logs).
  std::string Describe() const;

  static constexpr int kWarmupSamples = 3;
  static constexpr int kRefreshNear = 48;
  static constexpr int kRefreshFar = 500;
  static constexpr int kCostWindow = 7;  // recent measurements of a k's cost
  static constexpr double kAcceptDecay = 0.98;  // per drafting step
  static constexpr double kAcceptPrior = 64.0;  // tokens of the all-k estimate
  static constexpr double kDraftMargin = 0.03;

 private:
  struct Cost {
    // The last kCostWindow seconds per row (a ring); the estimate is their
    // median: a neighbour process only ever adds time, and one slow step
    // must not make plain decoding look slow for hundreds of steps.
    std::array<double, kCostWindow> recent{};
    int next = 0;
    int samples = 0;
    int64_t last_step = 0;
  };
  struct Acceptance {
    double accepted = 0, rejections = 0;  // decayed per drafting step at this k
  };
  struct Bucket {
    std::vector<Cost> cost;
    double accepted = 0, rejections = 0, rows_drafted = 0, rows = 0;
    std::vector<Acceptance> by_k;
    std::vector<int64_t> played;  // steps recorded per k
  };
  static int BucketOf(int64_t batch);
  Bucket& Get(int64_t batch, int k_max);
  static double Predict(const Bucket& b, int k);

  std::map<int, Bucket> buckets_;
  int64_t steps_ = 0;
  double k_sum_ = 0;
};

}  // namespace rlpost
