#include "rollout/spec_tuner.h"

#include <algorithm>
#include <cmath>

namespace rlpost {
namespace {

constexpr double kDecay = 0.97;  // weight of the past per step
// Before anything is measured: acceptance and drafted-row share of a
// drafter worth trying.
constexpr double kPriorAlpha = 0.6;
constexpr double kPriorWeight = 2.0;

}  // namespace

double SpecTuner::PredictForward(double tokens) const {
  if (sw_ <= 0) return 0;
  const double mx = sx_ / sw_, my = sy_ / sw_;
  const double var = sxx_ / sw_ - mx * mx;
  double b;
  if (var > 1e-9 * std::max(1.0, mx * mx)) {
    b = (sxy_ / sw_ - mx * my) / var;
  } else {
    // One shape seen so far: assume a sublinear cost (fixed overhead
    // dominates small forwards), which makes the first drafts worth trying.
    b = 0.25 * my / std::max(mx, 1.0);
  }
  b = std::max(b, 0.0);
  const double a = std::max(my - b * mx, 0.0);
  return a + b * tokens;
}

double SpecTuner::acceptance() const {
  const double acc = accepted_ + kPriorAlpha * kPriorWeight;
  const double rej = rejected_ + (1 - kPriorAlpha) * kPriorWeight;
  return acc / (acc + rej);
}

double SpecTuner::Throughput(int64_t batch, int k) const {
  const double b = static_cast<double>(batch);
  const double alpha = std::min(acceptance(), 0.999);
  const double share = (rows_with_draft_ + kPriorWeight) / (rows_ + kPriorWeight);
  const double per_row =
      k == 0 ? 1.0 : share * (1 - std::pow(alpha, k + 1)) / (1 - alpha) + (1 - share);
  const double t = PredictForward(b * (k + 1)) + (k > 0 ? k * draft_per_token_ : 0.0);
  return t > 0 ? b * per_row / t : 0.0;
}

int SpecTuner::Choose(int64_t batch, int k_max) {
  if (k_max <= 0) return 0;
  if (sw_ <= 0) return 0;  // measure plain decoding first
  if (!draft_seen_) return k_max;
  int best = 0;
  double best_rate = Throughput(batch, 0);
  for (int k = 1; k <= k_max; ++k) {
    const double rate = Throughput(batch, k);
    if (rate > best_rate) {
      best_rate = rate;
      best = k;
    }
  }
  if (best == 0 && ++since_draft_ >= kExploreEvery) {
    since_draft_ = 0;
    return 1;
  }
  if (best > 0) since_draft_ = 0;
  return best;
}

void SpecTuner::Record(int64_t batch, int64_t columns, double forward_s, int k, double draft_s,
                       int64_t drafted, int64_t accepted, int64_t rows_drafted,
                       int64_t rejections) {
  const double x = static_cast<double>(batch * columns);
  sw_ = sw_ * kDecay + 1;
  sx_ = sx_ * kDecay + x;
  sy_ = sy_ * kDecay + forward_s;
  sxx_ = sxx_ * kDecay + x * x;
  sxy_ = sxy_ * kDecay + x * forward_s;
  ++steps_;
  k_sum_ += k;
  if (k > 0) {
    const double per = draft_s / k;
    draft_per_token_ = draft_seen_ ? 0.8 * draft_per_token_ + 0.2 * per : per;
    draft_seen_ = true;
    accepted_ = accepted_ * kDecay + static_cast<double>(accepted);
    rejected_ = rejected_ * kDecay + static_cast<double>(rejections);
    rows_with_draft_ = rows_with_draft_ * kDecay + static_cast<double>(rows_drafted);
    rows_ = rows_ * kDecay + static_cast<double>(batch);
  }
  (void)drafted;
}

}  // namespace rlpost
