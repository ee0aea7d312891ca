#include "rollout/spec_tuner.h"

#include <algorithm>
#include <cstdlib>
#include <cmath>

namespace rlpost {

int SpecTuner::Bucket(int64_t batch) {
  int b = 0;
  while ((int64_t{2} << b) <= batch) ++b;
  return b;  // octaves: 1, 2-3, 4-7, 8-15, ...
}

std::vector<SpecTuner::Arm>& SpecTuner::Arms(int64_t batch, int k_max) {
  const int bucket = Bucket(batch);
  auto it = buckets_.find(bucket);
  if (it == buckets_.end()) {
    // Start from the nearest bucket measured so far: which arms pay changes
    // gradually with the batch size; the refreshes correct the rest.
    std::vector<Arm> start;
    int best_distance = 1 << 30;
    for (const auto& [b, arms] : buckets_) {
      if (std::abs(b - bucket) < best_distance) {
        best_distance = std::abs(b - bucket);
        start = arms;
      }
    }
    it = buckets_.emplace(bucket, std::move(start)).first;
  }
  std::vector<Arm>& arms = it->second;
  if (static_cast<int>(arms.size()) < k_max + 1) arms.resize(static_cast<size_t>(k_max) + 1);
  return arms;
}

int SpecTuner::Best(int64_t batch, int k_max) {
  if (k_max <= 0) return 0;
  std::vector<Arm>& arms = Arms(batch, k_max);
  int best = 0;
  for (int k = 1; k <= k_max; ++k) {
    if (arms[k].samples > 0 && arms[k].rate() > arms[best].rate()) best = k;
  }
  return best;
}

int SpecTuner::Choose(int64_t batch, int k_max) {
  if (k_max <= 0) return 0;
  std::vector<Arm>& arms = Arms(batch, k_max);
  // Every arm measured a few times first; plain decoding first of all.
  for (int k = 0; k <= k_max; ++k) {
    if (arms[k].samples < kWarmupSamples) return k;
  }
  const int best = Best(batch, k_max);
  // Re-measure the stalest arm close to the best that is due; of the arms
  // clearly worse than the best, only the most promising one, and rarely:
  // probing a drafter that has sat idle costs a catch-up forward.
  int due = -1;
  int64_t oldest = steps_;
  int far = -1;
  for (int k = 0; k <= k_max; ++k) {
    if (k == best) continue;
    if (arms[k].rate() >= 0.9 * arms[best].rate()) {
      if (steps_ - arms[k].last_step >= kRefreshNear && arms[k].last_step < oldest) {
        oldest = arms[k].last_step;
        due = k;
      }
    } else if (far < 0 || arms[k].rate() > arms[far].rate()) {
      far = k;
    }
  }
  if (due < 0 && far >= 0) {
    int64_t last_far = 0;
    for (int k = 0; k <= k_max; ++k) {
      if (k != best && arms[k].rate() < 0.9 * arms[best].rate()) {
        last_far = std::max(last_far, arms[k].last_step);
      }
    }
    if (steps_ - last_far >= kRefreshFar) due = far;
  }
  return due >= 0 ? due : best;
}

void SpecTuner::Record(int64_t batch, int k, double seconds, int64_t tokens) {
  ++steps_;
  k_sum_ += k;
  if (seconds <= 0) return;
  std::vector<Arm>& arms = Arms(batch, k);
  Arm& arm = arms[k];
  arm.tokens = kDecay * arm.tokens + static_cast<double>(tokens);
  arm.row_seconds = kDecay * arm.row_seconds + seconds * static_cast<double>(batch);
  ++arm.samples;
  arm.last_step = steps_;
}

double SpecTuner::Rate(int64_t batch, int k) const {
  auto it = buckets_.find(Bucket(batch));
  if (it == buckets_.end() || k >= static_cast<int>(it->second.size()) ||
      it->second[k].samples == 0) {
    return -1;
  }
  return it->second[k].rate();
}

}  // namespace rlpost
