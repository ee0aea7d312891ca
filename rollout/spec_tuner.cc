#include "rollout/spec_tuner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace rlpost {
namespace {

// Before any drafting: an acceptance worth measuring (alpha 0.6, share 0.5),
// with the weight of a couple of tokens.
constexpr double kPriorAccepted = 1.2, kPriorRejections = 0.8;
constexpr double kPriorDrafted = 1.0, kPriorRows = 2.0;

}  // namespace

int SpecTuner::BucketOf(int64_t batch) {
  int b = 0;
  while ((int64_t{2} << b) <= batch) ++b;
  return b;  // octaves: 1, 2-3, 4-7, 8-15, ...
}

SpecTuner::Bucket& SpecTuner::Get(int64_t batch, int k_max) {
  const int bucket = BucketOf(batch);
  auto it = buckets_.find(bucket);
  if (it == buckets_.end()) {
    // Acceptance does not depend on the batch size: start from the nearest
    // bucket's. Costs do, steeply (a step's time per row falls several-fold
    // from batch 1 to 32), so every draft length is measured afresh here:
    // a neighbour's costs, weighted as if measured here, would take many
    // far re-measurements to correct.
    Bucket start;
    int best_distance = 1 << 30;
    for (const auto& [b, data] : buckets_) {
      if (std::abs(b - bucket) < best_distance) {
        best_distance = std::abs(b - bucket);
        start = data;
      }
    }
    start.cost.clear();
    it = buckets_.emplace(bucket, std::move(start)).first;
  }
  Bucket& b = it->second;
  if (static_cast<int>(b.cost.size()) < k_max + 1) b.cost.resize(static_cast<size_t>(k_max) + 1);
  if (b.by_k.size() < b.cost.size()) b.by_k.resize(b.cost.size());
  if (b.played.size() < b.cost.size()) b.played.resize(b.cost.size(), 0);
  return b;
}

double SpecTuner::Predict(const Bucket& b, int k) {
  const Cost& c = b.cost[k];
  if (c.samples == 0) return -1;
  const int n = std::min(c.samples, kCostWindow);
  std::array<double, kCostWindow> window = c.recent;
  // Plain decoding, re-measured once every kRefreshNear steps, has a window
  // that spans hundreds of steps, the best k's only the last few: a burst of
  // load from a neighbour inflates plain decoding's median far longer than
  // the best k's. Its minimum is immune (load only adds time), and errs
  // towards plain decoding, the safe side.
  const int at = k == 0 ? 0 : n / 2;
  std::nth_element(window.begin(), window.begin() + at, window.begin() + n);
  const double per_row = window[static_cast<size_t>(at)];
  if (per_row <= 0) return -1;
  if (k == 0) return 1.0 / per_row;
  const double pooled = (b.accepted + kPriorAccepted) /
                        (b.accepted + b.rejections + kPriorAccepted + kPriorRejections);
  const Acceptance& a = b.by_k[static_cast<size_t>(k)];
  const double alpha = std::min(
      (a.accepted + kAcceptPrior * pooled) / (a.accepted + a.rejections + kAcceptPrior), 0.999);
  const double share = std::min((b.rows_drafted + kPriorDrafted) / (b.rows + kPriorRows), 1.0);
  const double tokens = share * (1 - std::pow(alpha, k + 1)) / (1 - alpha) + (1 - share);
  return tokens / per_row;
}

int SpecTuner::Best(int64_t batch, int k_max) {
  if (k_max <= 0) return 0;
  const Bucket& b = Get(batch, k_max);
  int best = 0;
  double best_rate = Predict(b, 0);
  const double plain = best_rate;
  for (int k = 1; k <= k_max; ++k) {
    const double r = Predict(b, k);
    if (r > best_rate && r > (1 + kDraftMargin) * plain) {
      best_rate = r;
      best = k;
    }
  }
  return best;
}

int SpecTuner::Choose(int64_t batch, int k_max) {
  if (k_max <= 0) return 0;
  Bucket& b = Get(batch, k_max);
  // Every cost measured a few times first; plain decoding first of all.
  for (int k = 0; k <= k_max; ++k) {
    if (b.cost[k].samples < kWarmupSamples) return k;
  }
  const int best = Best(batch, k_max);
  const double best_rate = Predict(b, best);
  // Re-measure the stalest k close to the best that is due; of the clearly
  // worse ones only the most promising, and rarely: probing a drafter that
  // has sat idle costs a catch-up forward. Plain decoding, the baseline that
  // drafting must beat, always counts as close: a stale slow measurement of
  // it must not keep drafting on.
  int due = -1, far = -1;
  int64_t oldest = steps_, last_far = 0;
  for (int k = 0; k <= k_max; ++k) {
    if (k == best) continue;
    const double r = Predict(b, k);
    if (k == 0 || r >= 0.9 * best_rate) {
      if (steps_ - b.cost[k].last_step >= kRefreshNear && b.cost[k].last_step < oldest) {
        oldest = b.cost[k].last_step;
        due = k;
      }
    } else {
      last_far = std::max(last_far, b.cost[k].last_step);
      if (far < 0 || r > Predict(b, far)) far = k;
    }
  }
  if (due < 0 && far >= 0 && steps_ - last_far >= kRefreshFar) due = far;
  return due >= 0 ? due : best;
}

void SpecTuner::Record(int64_t batch, int k, double seconds, int64_t rows_drafted,
                       int64_t accepted, int64_t rejections) {
  ++steps_;
  k_sum_ += k;
  if (seconds <= 0 || batch <= 0) return;
  Bucket& b = Get(batch, k);
  Cost& c = b.cost[k];
  b.played[static_cast<size_t>(k)] += 1;
  c.recent[static_cast<size_t>(c.next)] = seconds / static_cast<double>(batch);
  c.next = (c.next + 1) % kCostWindow;
  ++c.samples;
  c.last_step = steps_;
  if (k > 0) {
    b.accepted = kAcceptDecay * b.accepted + static_cast<double>(accepted);
    b.rejections = kAcceptDecay * b.rejections + static_cast<double>(rejections);
    b.rows_drafted = kAcceptDecay * b.rows_drafted + static_cast<double>(rows_drafted);
    b.rows = kAcceptDecay * b.rows + static_cast<double>(batch);
    Acceptance& a = b.by_k[static_cast<size_t>(k)];
    a.accepted = kAcceptDecay * a.accepted + static_cast<double>(accepted);
    a.rejections = kAcceptDecay * a.rejections + static_cast<double>(rejections);
  }
}

std::string SpecTuner::Describe() const {
  std::string out;
  for (const auto& [bucket, b] : buckets_) {
    const int64_t lo = int64_t{1} << bucket;
    out += "  batch " + std::to_string(lo) + "-" + std::to_string(2 * lo - 1) + ":";
    for (size_t k = 0; k < b.cost.size(); ++k) {
      char cell[96];
      const Acceptance& a = b.by_k[k];
      std::snprintf(cell, sizeof(cell), " k%zu %.0f/s x%lld", k, Predict(b, static_cast<int>(k)),
                    static_cast<long long>(b.played[k]));
      out += cell;
      if (k > 0 && a.accepted + a.rejections > 0) {
        std::snprintf(cell, sizeof(cell), " (a%.2f)", a.accepted / (a.accepted + a.rejections));
        out += cell;
      }
    }
    out += "\n";
  }
  return out;
}

double SpecTuner::Rate(int64_t batch, int k) const {
  auto it = buckets_.find(BucketOf(batch));
  if (it == buckets_.end() || k >= static_cast<int>(it->second.cost.size())) return -1;
  return Predict(it->second, k);
}

}  // namespace rlpost
