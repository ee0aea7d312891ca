#pragma once
// Turning one row of logits into a sampled token and its logprob under the
// distribution actually sampled from (temperature, then top-k, then top-p).
// Plain C++ on float arrays; deterministic for a given RNG state.

#include <cstdint>
#include <random>
#include <vector>

namespace rlpost {

struct SamplingOptions {
  double temperature = 1.0;  // 0 = greedy
  double top_p = 1.0;        // <= 0 or >= 1: off
  int top_k = 0;             // 0: off
  int max_new_tokens = 0;    // 0: up to the context length
  std::vector<int> stop_token_ids;
};

struct SampledToken {
  int token = 0;
  float logprob = 0.0f;  // 0 for greedy (the greedy distribution is one-hot)
};

// The sampling distribution as probabilities (zeros where masked).
std::vector<double> SamplingDistribution(const float* logits, int vocab,
                                         const SamplingOptions& options);

SampledToken SampleToken(const float* logits, int vocab, const SamplingOptions& options,
                         std::mt19937_64& rng);

// Per-sample seeds: sample i of a group seeded `seed` (a pure function).
uint64_t SampleSeed(uint64_t group_seed, int64_t sample_index);

}  // namespace rlpost
