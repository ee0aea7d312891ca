#pragma once
// Exact verification of drafted tokens (speculative sampling, Leviathan et
// al. 2023; Chen et al. 2023). Plain C++ on probability rows; no LibTorch.
//
// Given the target distributions p_0..p_k at the k+1 verified positions
// (after temperature / top-k / top-p) and k drafted tokens d_1..d_k:
// - a drafter with probabilities q_j: accept d_j with probability
//   min(1, p_j(d_j) / q_j(d_j)); on the first rejection emit a token from the
//   normalised residual max(0, p_j - q_j) and stop;
// - a drafter without probabilities (n-gram lookup): the draft is treated as
//   certain (q one-hot). Then the rule above is the same as sampling
//   x ~ p_j with the plain-decoding uniform and accepting iff x == d_j, which
//   is what we do: the output equals plain decoding token for token;
// - when every draft is accepted, a bonus token is sampled from p_k.
// Every emitted token is therefore distributed exactly as under plain
// autoregressive sampling from p. For greedy options p is one-hot and this is
// "accept while the draft equals the argmax".
//
// Uniforms come from TokenUniform(seed, absolute position, purpose), so the
// result is a pure function of the inputs.

#include <cstdint>
#include <vector>

namespace rlpost {

struct DraftVerifyInput {
  // k+1 target rows over the vocabulary; row j is the distribution of the
  // token at position first_position + j.
  const std::vector<std::vector<double>>* target = nullptr;
  std::vector<int> draft_tokens;  // k tokens
  // Either empty (certain drafts) or k rows: draft_probs[j] is the
  // distribution draft_tokens[j] was sampled from.
  const std::vector<std::vector<double>>* draft_probs = nullptr;
  uint64_t seed = 0;
  int64_t first_position = 0;  // absolute position of draft_tokens[0]
};

struct DraftVerifyResult {
  int accepted = 0;          // number of leading drafts accepted (0..k)
  std::vector<int> tokens;   // accepted drafts, then one corrected or bonus token
  std::vector<double> probs; // p_j(tokens[j]) under the target (for logprobs)
};

DraftVerifyResult VerifyDraft(const DraftVerifyInput& input);

// The drafter side: sample a draft token from q at `position` (purpose kDraft).
int SampleDraftToken(const std::vector<double>& q, uint64_t seed, int64_t position);

}  // namespace rlpost
