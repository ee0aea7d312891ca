#include "learner/packing.h"

#include <algorithm>
#include <numeric>

namespace rlpost {
namespace {

// `indices` sorted longest first; equal lengths keep ascending index order.
std::vector<int64_t> LongestFirst(const std::vector<int64_t>& lengths,
                                  std::vector<int64_t> indices) {
  std::stable_sort(indices.begin(), indices.end(), [&](int64_t a, int64_t b) {
    return lengths[static_cast<size_t>(a)] > lengths[static_cast<size_t>(b)];
  });
  return indices;
}

}  // namespace

std::vector<std::vector<int64_t>> BalanceAcrossRanks(const std::vector<int64_t>& lengths,
                                                     int world) {
  world = std::max(world, 1);
  std::vector<int64_t> all(lengths.size());
  std::iota(all.begin(), all.end(), 0);
  std::vector<std::vector<int64_t>> ranks(static_cast<size_t>(world));
  std::vector<int64_t> load(static_cast<size_t>(world), 0);
  for (int64_t i : LongestFirst(lengths, all)) {
    const size_t r = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    ranks[r].push_back(i);
    load[r] += lengths[static_cast<size_t>(i)];
  }
  for (auto& r : ranks) std::sort(r.begin(), r.end());
  return ranks;
}

std::vector<std::vector<int64_t>> PlanMicroBatches(const std::vector<int64_t>& lengths,
                                                   const std::vector<int64_t>& indices,
                                                   int64_t token_budget) {
  std::vector<std::vector<int64_t>> bins;
  if (indices.empty()) return bins;
  if (token_budget <= 0) {
    bins.push_back(indices);
    std::sort(bins[0].begin(), bins[0].end());
    return bins;
  }
  std::vector<int64_t> used;
  for (int64_t i : LongestFirst(lengths, indices)) {
    const int64_t n = lengths[static_cast<size_t>(i)];
    size_t b = 0;
    while (b < bins.size() && used[b] + n > token_budget) ++b;
    if (b == bins.size()) {
      bins.emplace_back();
      used.push_back(0);
    }
    bins[b].push_back(i);
    used[b] += n;
  }
  for (auto& bin : bins) std::sort(bin.begin(), bin.end());
  std::sort(bins.begin(), bins.end(),
            [](const std::vector<int64_t>& a, const std::vector<int64_t>& b) { return a[0] < b[0]; });
  return bins;
}

}  // namespace rlpost
