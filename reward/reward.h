#pragma once
// Built-in reward shaping: turns a verifier verdict and the response text into
// a scalar reward and its named parts. Pure functions; safe to call from any
// thread. (Plugins loaded through a C ABI come later; they will add parts.)

#include <string>
#include <string_view>

namespace rlpost {

struct RewardWeights {
  double correct = 1.0;  // weight of the verifier's correctness score
  double format = 0.0;   // bonus for a response that ends in one \boxed{...}
};

struct RewardInput {
  double verifier_score = 0.0;  // 1 correct, 0 wrong (partial credit allowed)
  std::string_view response;
};

struct RewardParts {
  double correctness = 0.0;  // weighted verifier score
  double format = 0.0;       // weighted format bonus
  double total = 0.0;        // sum of the parts
};

RewardParts ComputeReward(const RewardWeights& weights, const RewardInput& input);

// True when the response holds exactly one \boxed{...} with balanced braces
// and nothing but whitespace or punctuation after it.
bool HasWellFormedAnswer(std::string_view response);

}  // namespace rlpost
