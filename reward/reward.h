#pragma once
// Built-in reward shaping: turns verifier verdicts and responses into scalar
// rewards made of named, weighted parts, one group (the samples of a prompt)
// at a time. Plugin scores (reward/plugin_runner.h) are added as further
// parts by the caller. Pure functions; safe to call from any thread.
//
// Parts (each weighted by its config key; a part with weight 0 is left out,
// except correctness, which is always recorded):
//   correctness  the verifier's score in [0, 1]
//   format       1 when the response has the think/answer structure
//   overlong     DAPO's soft overlong punishment in [-1, 0]
//   length       Kimi k1.5's group-relative length reward in [-0.5, 0.5]
//   repetition   minus the share of repeated token n-grams, in [-1, 0]
// total = sum over parts of weight * value.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rlpost {

struct RewardConfig {
  double correct = 1.0;
  double format = 0.0;
  bool format_think = false;  // format also needs reasoning closed by </think>
  double overlong = 0.0;
  int64_t overlong_max_tokens = 0;     // DAPO's L_max: the generation budget
  int64_t overlong_buffer_tokens = 0;  // DAPO's L_cache: the punished band below L_max
  double length = 0.0;
  double repetition = 0.0;
  int repetition_ngram = 4;
};

struct RewardSampleInput {
  double verifier_score = 0.0;  // 1 correct, 0 wrong (partial credit allowed)
  bool correct = false;
  std::string_view response;
  const int32_t* token_ids = nullptr;  // the response's tokens
  size_t token_count = 0;
};

struct RewardPart {
  std::string name;  // "correctness", ..., or "plugin:<id>" for a plugin
  double weight = 0.0;
  double value = 0.0;
  double weighted() const { return weight * value; }
};

struct SampleReward {
  std::vector<RewardPart> parts;
  double total = 0.0;
  // Not empty when a part could not be computed (a failed plugin): the
  // sample must not be trained on.
  std::string failure;

  void Add(std::string name, double weight, double value);
  bool failed() const { return !failure.empty(); }
};

// The built-in parts of every sample of one group.
std::vector<SampleReward> ComputeGroupRewards(const RewardConfig& config,
                                              const std::vector<RewardSampleInput>& group);

// True when the response holds exactly one \boxed{...} with balanced braces
// and nothing but whitespace or punctuation after it.
bool HasWellFormedAnswer(std::string_view response);

// 1 when the response is well formed: with require_think, reasoning closed
// by one "</think>" (opened by one leading "<think>", or by the prompt's
// template) and then a well-formed answer; otherwise a well-formed answer.
double FormatScore(std::string_view response, bool require_think);

// DAPO (Yu et al. 2025): 0 up to max_tokens - buffer_tokens, then falling
// linearly to -1 at max_tokens, -1 beyond. buffer_tokens 0: -1 beyond
// max_tokens only.
double SoftOverlongPenalty(int64_t length, int64_t max_tokens, int64_t buffer_tokens);

// Kimi k1.5 (2025): lambda_i = 0.5 - (len_i - min) / (max - min) over the
// group; lambda for a correct sample, min(0, lambda) for a wrong one; all 0
// when every length is equal.
std::vector<double> GroupLengthRewards(const std::vector<int64_t>& lengths,
                                       const std::vector<bool>& correct);

// -(n-grams that repeat an earlier one) / (n-grams) over the token ids; 0 for
// fewer than n tokens.
double RepetitionPenalty(const int32_t* token_ids, size_t count, int ngram);

}  // namespace rlpost
