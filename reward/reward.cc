#include "reward/reward.h"

#include <cctype>

namespace rlpost {

bool HasWellFormedAnswer(std::string_view response) {
  constexpr std::string_view kBoxed = "\\boxed{";
  size_t first = response.find(kBoxed);
  if (first == std::string_view::npos) return false;
  if (response.find(kBoxed, first + 1) != std::string_view::npos) return false;
  int depth = 1;
  size_t i = first + kBoxed.size();
  for (; i < response.size() && depth > 0; ++i) {
    if (response[i] == '{') ++depth;
    if (response[i] == '}') --depth;
  }
  if (depth != 0) return false;
  for (; i < response.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(response[i]);
    if (!std::isspace(c) && !std::ispunct(c)) return false;
  }
  return true;
}

RewardParts ComputeReward(const RewardWeights& weights, const RewardInput& input) {
  RewardParts parts;
  parts.correctness = weights.correct * input.verifier_score;
  parts.format = HasWellFormedAnswer(input.response) ? weights.format : 0.0;
  parts.total = parts.correctness + parts.format;
  return parts;
}

}  // namespace rlpost
