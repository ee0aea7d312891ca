#pragma once
// Adaptive draft length. Picks k in [0, k_max] for the next decode step so
// that expected tokens per second are highest, from what the engine measured
// on this machine:
// - the time of a verify forward as a function of the tokens it feeds,
//   t(B*T) = a + b * B*T, fitted by exponentially weighted least squares;
// - the drafter's time per drafted token position;
// - the per-token acceptance probability alpha (maximum likelihood for a
//   geometric number of accepted drafts: accepted / (accepted + rejections))
//   and the share of rows that had a draft at all (an n-gram lookup may find
//   nothing).
// Expected tokens per row with k drafts: f * (1 - alpha^(k+1)) / (1 - alpha)
// + (1 - f). k = 0 competes on the same model, so speculation is turned off
// where it would not pay (large batches, low acceptance). While k = 0 wins,
// one step in kExploreEvery still drafts so the estimates stay current.
//
// Plain C++; not thread-safe (the engine's step thread owns it).

#include <cstdint>

namespace rlpost {

class SpecTuner {
 public:
  int Choose(int64_t batch, int k_max);
  // One decode step: `batch` rows fed `columns` tokens each (padded) in
  // `forward_s`; `k` the chosen draft length, `draft_s` the drafting time,
  // `drafted`/`accepted` token counts, `rows_drafted` rows with a draft and
  // `rejections` rows whose draft was cut short by a rejection.
  void Record(int64_t batch, int64_t columns, double forward_s, int k, double draft_s,
              int64_t drafted, int64_t accepted, int64_t rows_drafted, int64_t rejections);

  double acceptance() const;
  double MeanDraftLength() const { return steps_ > 0 ? k_sum_ / steps_ : 0.0; }
  // Predicted verify-forward seconds for `tokens` fed tokens (tests, logs).
  double PredictForward(double tokens) const;

  static constexpr int kExploreEvery = 40;

 private:
  double Throughput(int64_t batch, int k) const;

  // Exponentially weighted sums for the forward-time fit.
  double sw_ = 0, sx_ = 0, sy_ = 0, sxx_ = 0, sxy_ = 0;
  double draft_per_token_ = 0;  // seconds per drafted position (EMA)
  bool draft_seen_ = false;
  double accepted_ = 0, rejected_ = 0;  // EMA counts
  double rows_with_draft_ = 0, rows_ = 0;
  int64_t steps_ = 0;
  double k_sum_ = 0;
  int since_draft_ = 0;
};

}  // namespace rlpost
