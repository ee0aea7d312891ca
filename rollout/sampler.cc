#include "rollout/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/seed.h"

namespace rlpost {

uint64_t SampleSeed(uint64_t group_seed, int64_t sample_index) {
  // SplitMix64's own increment makes this seed + golden * (index + 1).
  return SplitMix64(group_seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(sample_index));
}

absl::Status ValidateSamplingOptions(const SamplingOptions& options, int64_t vocab) {
  if (!std::isfinite(options.temperature) || options.temperature < 0 ||
      options.temperature > 1000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "temperature must be in [0, 1000] (0 = greedy), got ", options.temperature));
  }
  if (!std::isfinite(options.top_p) || options.top_p < 0 || options.top_p > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_p must be in [0, 1] (0 or 1 = off), got ", options.top_p));
  }
  if (options.top_k < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_k must be >= 0 (0 = off), got ", options.top_k));
  }
  if (options.max_new_tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_new_tokens must be >= 0 (0 = up to the context length), got ",
        options.max_new_tokens));
  }
  for (int id : options.stop_token_ids) {
    if (id < 0 || id >= vocab) {
      return absl::InvalidArgumentError(absl::StrCat("stop_token_ids: ", id,
                                                     " is outside the vocabulary [0, ", vocab,
                                                     ")"));
    }
  }
  for (const std::string& s : options.stop_strings) {
    if (s.empty()) return absl::InvalidArgumentError("stop_strings: empty string");
  }
  return absl::OkStatus();
}

bool IsGreedy(const SamplingOptions& options) { return options.temperature <= 0.0; }

void SamplingDistribution(const float* logits, int vocab, const SamplingOptions& options,
                          std::vector<double>* p_out) {
  std::vector<double>& p = *p_out;
  p.assign(static_cast<size_t>(vocab), 0.0);
  if (IsGreedy(options)) {
    p[std::max_element(logits, logits + vocab) - logits] = 1.0;
    return;
  }
  const double t = options.temperature;
  const double max_logit = *std::max_element(logits, logits + vocab);
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) {
    p[i] = std::exp((static_cast<double>(logits[i]) - max_logit) / t);
    sum += p[i];
  }
  for (double& x : p) x /= sum;
  const bool use_k = options.top_k > 0 && options.top_k < vocab;
  const bool use_p = options.top_p > 0.0 && options.top_p < 1.0;
  if (!use_k && !use_p) return;
  std::vector<int> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  int keep = use_k ? options.top_k : vocab;
  // Only the kept prefix needs to be in order.
  auto by_mass = [&](int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); };
  if (use_p) {
    std::sort(order.begin(), order.end(), by_mass);
    // Nucleus over the top-k survivors renormalised (as transformers and vLLM).
    double survivors = 0.0;
    for (int i = 0; i < keep; ++i) survivors += p[order[i]];
    const double threshold = options.top_p * survivors;
    double mass = 0.0;
    int n = 0;
    while (n < keep) {
      mass += p[order[n]];
      ++n;
      if (mass >= threshold) break;
    }
    keep = n;
  } else {
    std::partial_sort(order.begin(), order.begin() + keep, order.end(), by_mass);
  }
  double kept = 0.0;
  for (int i = 0; i < vocab; ++i) {
    if (i >= keep) p[order[i]] = 0.0;
    kept += p[order[i]];
  }
  for (double& x : p) x /= kept;
}

std::vector<double> SamplingDistribution(const float* logits, int vocab,
                                         const SamplingOptions& options) {
  std::vector<double> p;
  SamplingDistribution(logits, vocab, options, &p);
  return p;
}

float RawLogprob(const float* logits, int vocab, int token) {
  const double max_logit = *std::max_element(logits, logits + vocab);
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - max_logit);
  return static_cast<float>(static_cast<double>(logits[token]) - max_logit - std::log(sum));
}

double TokenUniform(uint64_t seed, int64_t position, RandomPurpose purpose) {
  uint64_t x = SplitMix64(seed ^ (0xD1B54A32D192ED03ull * static_cast<uint64_t>(purpose)));
  x = SplitMix64(x + static_cast<uint64_t>(position));
  return static_cast<double>(x >> 11) * (1.0 / 9007199254740992.0);
}

int SampleFrom(const std::vector<double>& p, double u, double total) {
  const double target = u * total;
  double acc = 0.0;
  int chosen = -1;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0.0) continue;
    acc += p[i];
    chosen = static_cast<int>(i);
    if (target < acc) break;
  }
  return chosen;
}

SampledToken SampleToken(const float* logits, int vocab, const SamplingOptions& options,
                         uint64_t seed, int64_t position) {
  SampledToken out;
  if (IsGreedy(options)) {
    out.token = static_cast<int>(std::max_element(logits, logits + vocab) - logits);
    return out;
  }
  std::vector<double> p;
  SamplingDistribution(logits, vocab, options, &p);
  out.token = SampleFrom(p, TokenUniform(seed, position, RandomPurpose::kSample));
  out.logprob = static_cast<float>(std::log(p[out.token]));
  return out;
}

}  // namespace rlpost
