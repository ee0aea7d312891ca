#include "rollout/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/seed.h"

namespace rlpost {

uint64_t SampleSeed(uint64_t group_seed, int64_t sample_index) {
  // SplitMix64's own increment makes this seed + golden * (index + 1).
  return SplitMix64(group_seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(sample_index));
}

std::vector<double> SamplingDistribution(const float* logits, int vocab,
                                         const SamplingOptions& options) {
  std::vector<double> p(static_cast<size_t>(vocab), 0.0);
  double t = options.temperature;
  double max_logit = *std::max_element(logits, logits + vocab);
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) {
    p[i] = std::exp((static_cast<double>(logits[i]) - max_logit) / t);
    sum += p[i];
  }
  for (double& x : p) x /= sum;
  bool use_k = options.top_k > 0 && options.top_k < vocab;
  bool use_p = options.top_p > 0.0 && options.top_p < 1.0;
  if (use_k || use_p) {
    std::vector<int> order(static_cast<size_t>(vocab));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
    int keep = use_k ? options.top_k : vocab;
    if (use_p) {
      double mass = 0.0;
      int n = 0;
      while (n < keep) {
        mass += p[order[n]];
        ++n;
        if (mass >= options.top_p) break;
      }
      keep = n;
    }
    double kept = 0.0;
    for (int i = 0; i < vocab; ++i) {
      if (i >= keep) p[order[i]] = 0.0;
      kept += p[order[i]];
    }
    for (double& x : p) x /= kept;
  }
  return p;
}

SampledToken SampleToken(const float* logits, int vocab, const SamplingOptions& options,
                         std::mt19937_64& rng) {
  SampledToken out;
  if (options.temperature <= 0.0) {
    out.token = static_cast<int>(std::max_element(logits, logits + vocab) - logits);
    out.logprob = 0.0f;
    return out;
  }
  std::vector<double> p = SamplingDistribution(logits, vocab, options);
  // 53 random bits -> uniform in [0, 1).
  double u = static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
  double acc = 0.0;
  int chosen = -1;
  for (int i = 0; i < vocab; ++i) {
    if (p[i] <= 0.0) continue;
    acc += p[i];
    chosen = i;
    if (u < acc) break;
  }
  out.token = chosen;
  out.logprob = static_cast<float>(std::log(p[chosen]));
  return out;
}

}  // namespace rlpost
