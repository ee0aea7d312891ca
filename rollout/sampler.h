#pragma once
// Turning one row of logits into a sampled token and its logprob under the
// distribution actually sampled from (temperature, then top-k, then top-p).
// Plain C++ on float arrays; no LibTorch.
//
// Randomness is counter based: the uniform number that decides the token at
// position n of a sequence is a pure function of (sequence seed, n, purpose)
// (TokenUniform). A sequence's output therefore depends neither on what else
// is in the batch nor on how many steps produced it, and the n-gram drafter's
// verification (spec_sampling.h) reproduces plain decoding token for token.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace rlpost {

struct SamplingOptions {
  double temperature = 1.0;  // 0 = greedy
  double top_p = 1.0;        // 0 or 1: off
  int top_k = 0;             // 0: off
  int max_new_tokens = 0;    // 0: up to the context length
  std::vector<int> stop_token_ids;   // generation stops after emitting one (kept)
  std::vector<std::string> stop_strings;  // stops at the token completing one (kept)
};

// Checks ranges; the error names the parameter and the accepted range.
// temperature in [0, 1000] and finite, top_p in [0, 1], top_k >= 0,
// max_new_tokens >= 0, stop token ids inside [0, vocab), stop strings non-empty.
absl::Status ValidateSamplingOptions(const SamplingOptions& options, int64_t vocab);

bool IsGreedy(const SamplingOptions& options);

// The sampling distribution as probabilities (zeros where masked), written to
// `p` (resized to vocab). For greedy options it is one-hot on the argmax
// (lowest id among ties).
void SamplingDistribution(const float* logits, int vocab, const SamplingOptions& options,
                          std::vector<double>* p);
std::vector<double> SamplingDistribution(const float* logits, int vocab,
                                         const SamplingOptions& options);

// log softmax(logits)[token] at temperature 1 without masks: the model's own
// logprob (what a trainer computes without sampling transforms).
float RawLogprob(const float* logits, int vocab, int token);

// What a uniform number decides; each purpose draws from its own stream.
enum class RandomPurpose : uint32_t {
  kSample = 1,    // plain sampling, bonus tokens, n-gram draft verification
  kAccept = 2,    // accept/reject test of a drafted token
  kResidual = 3,  // resampling from the residual after a rejection
  kDraft = 4,     // a drafter sampling its proposal
};

// Uniform in [0, 1) with 53 random bits, a pure function of its arguments.
double TokenUniform(uint64_t seed, int64_t position, RandomPurpose purpose);

// Inverse-CDF sample of a (normalised, non-negative) distribution: the first
// token whose cumulative mass exceeds u, skipping zeros; never a zero-mass
// token. `total` is the sum of p (pass 1 for normalised input).
int SampleFrom(const std::vector<double>& p, double u, double total = 1.0);

struct SampledToken {
  int token = 0;
  float logprob = 0.0f;  // log p[token]; 0 for greedy (the distribution is one-hot)
};

// Samples position `position` of a sequence seeded `seed`.
SampledToken SampleToken(const float* logits, int vocab, const SamplingOptions& options,
                         uint64_t seed, int64_t position);

// Per-sample seeds: sample i of a group seeded `seed` (a pure function).
uint64_t SampleSeed(uint64_t group_seed, int64_t sample_index);

}  // namespace rlpost
