#include "reward/reward.h"

#include <algorithm>
#include <cctype>
#include <unordered_set>

namespace rlpost {
namespace {

size_t Count(std::string_view text, std::string_view what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

// FNV-1a over an n-gram of token ids.
uint64_t HashNgram(const int32_t* ids, int n) {
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < n; ++i) {
    h ^= static_cast<uint32_t>(ids[i]);
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

void SampleReward::Add(std::string name, double weight, double value) {
  RewardPart part{std::move(name), weight, value};
  total += part.weighted();
  parts.push_back(std::move(part));
}

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

double FormatScore(std::string_view response, bool require_think) {
  if (!require_think) return HasWellFormedAnswer(response) ? 1.0 : 0.0;
  constexpr std::string_view kOpen = "<think>", kClose = "</think>";
  if (Count(response, kClose) != 1) return 0.0;
  const size_t close = response.find(kClose);
  std::string_view reasoning = response.substr(0, close);
  const size_t opens = Count(reasoning, kOpen);
  if (Count(response, kOpen) != opens || opens > 1) return 0.0;
  if (opens == 1) {
    size_t lead = 0;
    while (lead < reasoning.size() && std::isspace(static_cast<unsigned char>(reasoning[lead]))) {
      ++lead;
    }
    if (reasoning.substr(lead, kOpen.size()) != kOpen) return 0.0;
    reasoning.remove_prefix(lead + kOpen.size());
  }
  if (std::all_of(reasoning.begin(), reasoning.end(),
                  [](char c) { return std::isspace(static_cast<unsigned char>(c)); })) {
    return 0.0;  // no reasoning at all
  }
  return HasWellFormedAnswer(response.substr(close + kClose.size())) ? 1.0 : 0.0;
}

double SoftOverlongPenalty(int64_t length, int64_t max_tokens, int64_t buffer_tokens) {
  if (max_tokens <= 0) return 0.0;
  if (length > max_tokens) return -1.0;
  const int64_t free_until = max_tokens - buffer_tokens;
  if (buffer_tokens <= 0 || length <= free_until) return 0.0;
  return static_cast<double>(free_until - length) / static_cast<double>(buffer_tokens);
}

std::vector<double> GroupLengthRewards(const std::vector<int64_t>& lengths,
                                       const std::vector<bool>& correct) {
  std::vector<double> out(lengths.size(), 0.0);
  if (lengths.empty()) return out;
  const auto [lo, hi] = std::minmax_element(lengths.begin(), lengths.end());
  if (*hi == *lo) return out;
  const double span = static_cast<double>(*hi - *lo);
  for (size_t i = 0; i < lengths.size(); ++i) {
    const double lambda = 0.5 - static_cast<double>(lengths[i] - *lo) / span;
    out[i] = correct[i] ? lambda : std::min(0.0, lambda);
  }
  return out;
}

double RepetitionPenalty(const int32_t* token_ids, size_t count, int ngram) {
  if (ngram <= 0 || count < static_cast<size_t>(ngram)) return 0.0;
  const size_t total = count - static_cast<size_t>(ngram) + 1;
  std::unordered_set<uint64_t> seen;
  seen.reserve(total);
  size_t repeated = 0;
  for (size_t i = 0; i < total; ++i) {
    if (!seen.insert(HashNgram(token_ids + i, ngram)).second) ++repeated;
  }
  if (repeated == 0) return 0.0;
  return -static_cast<double>(repeated) / static_cast<double>(total);
}

std::vector<SampleReward> ComputeGroupRewards(const RewardConfig& config,
                                              const std::vector<RewardSampleInput>& group) {
  std::vector<SampleReward> out(group.size());
  std::vector<double> length_rewards;
  if (config.length != 0.0) {
    std::vector<int64_t> lengths;
    std::vector<bool> correct;
    for (const RewardSampleInput& s : group) {
      lengths.push_back(static_cast<int64_t>(s.token_count));
      correct.push_back(s.correct);
    }
    length_rewards = GroupLengthRewards(lengths, correct);
  }
  for (size_t i = 0; i < group.size(); ++i) {
    const RewardSampleInput& s = group[i];
    SampleReward& r = out[i];
    r.Add("correctness", config.correct, s.verifier_score);
    if (config.format != 0.0) r.Add("format", config.format, FormatScore(s.response, config.format_think));
    if (config.overlong != 0.0) {
      r.Add("overlong", config.overlong,
            SoftOverlongPenalty(static_cast<int64_t>(s.token_count), config.overlong_max_tokens,
                                config.overlong_buffer_tokens));
    }
    if (config.length != 0.0) r.Add("length", config.length, length_rewards[i]);
    if (config.repetition != 0.0) {
      r.Add("repetition", config.repetition,
            RepetitionPenalty(s.token_ids, s.token_count, config.repetition_ngram));
    }
  }
  return out;
}

}  // namespace rlpost
