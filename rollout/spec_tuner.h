#pragma once
// Adaptive draft length: picks k in [0, k_max] for the next decode step by
// measuring, not modelling. For each batch-size bucket (octaves of the
// number of rows) it keeps, per draft length, the measured rate: tokens
// emitted per row and second of the whole step (drafting, the verify
// forward, the MTP catch-up, sampling), as a ratio of exponentially decayed
// sums (a ratio of sums, not a mean of per-step ratios, which lucky steps
// with many accepted drafts would inflate). It plays the
// best arm and re-measures the others now and then: arms close to the best
// every kRefreshNear steps; of the clearly worse ones only the most promising,
// once per kRefreshFar steps, so exploration costs a few percent at most. A bucket seen for the first time
// starts from the nearest measured bucket's rates instead of measuring every
// arm again. k = 0 (plain decoding) is one of
// the arms, so speculation that does not pay on this machine, model, batch
// size and acceptance is switched off by measurement.
//
// Plain C++; not thread-safe (the engine's step thread owns it).

#include <cstdint>
#include <map>
#include <vector>

namespace rlpost {

class SpecTuner {
 public:
  int Choose(int64_t batch, int k_max);
  // The best measured draft length for this batch size (0 before any
  // measurement): what Choose plays when it is not re-measuring.
  int Best(int64_t batch, int k_max);
  // One decode step of `batch` rows with draft length `k` took `seconds`
  // and emitted `tokens`.
  void Record(int64_t batch, int k, double seconds, int64_t tokens);

  double MeanDraftLength() const { return steps_ > 0 ? k_sum_ / steps_ : 0.0; }
  // The measured rate (tokens per row-second) of draft length k at this batch size, or
  // -1 before any measurement (tests, logs).
  double Rate(int64_t batch, int k) const;

  static constexpr int kWarmupSamples = 4;
  static constexpr double kDecay = 0.97;  // per measurement of the same arm
  static constexpr int kRefreshNear = 48;
  static constexpr int kRefreshFar = 500;

 private:
  struct Arm {
    double tokens = 0;       // decayed sum of emitted tokens
    double row_seconds = 0;  // decayed sum of step seconds x rows
    int samples = 0;
    int64_t last_step = 0;
    double rate() const { return row_seconds > 0 ? tokens / row_seconds : 0.0; }
  };
  static int Bucket(int64_t batch);
  std::vector<Arm>& Arms(int64_t batch, int k_max);

  std::map<int, std::vector<Arm>> buckets_;
  int64_t steps_ = 0;
  double k_sum_ = 0;
};

}  // namespace rlpost
