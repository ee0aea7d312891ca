// An example rlpost reward plugin, written with the C++ SDK. It offers two
// reward functions:
//
//   digit_match     partial credit for a nearly right number: the share of
//                   the reference answer's characters that the \boxed{}
//                   answer matches position by position, scaled by `scale`
//                   (default 1). Config: "scale=0.5".
//   banned_phrases  minus `penalty` (default 1) for every occurrence of a
//                   listed phrase, down to -`cap` (default 1). Config:
//                   "phrases=as an AI|I cannot, penalty=0.5".
//
// Use it from a run config:
//   reward:
//     plugins:
//       digits:
//         path: librlpost_example_reward.so
//         function: digit_match
//         weight: 0.2
//         config: "scale=1"

#include <rlpost/reward_plugin.hpp>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using rlpost::plugin::InvalidConfig;
using rlpost::plugin::ParseKeyValues;
using rlpost::plugin::Sample;

double ParseNumber(const std::string& key, const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size()) {
    throw InvalidConfig(key + " must be a number, got '" + text + "'");
  }
  return v;
}

// The text inside the last \boxed{...} (balanced braces), or "".
std::string_view BoxedAnswer(std::string_view response) {
  const size_t at = response.rfind("\\boxed{");
  if (at == std::string_view::npos) return {};
  const size_t start = at + 7;
  int depth = 1;
  for (size_t i = start; i < response.size(); ++i) {
    if (response[i] == '{') ++depth;
    if (response[i] == '}' && --depth == 0) return response.substr(start, i - start);
  }
  return {};
}

class DigitMatch : public rlpost::plugin::RewardFunction {
 public:
  explicit DigitMatch(std::string_view config) {
    for (const auto& [key, value] : ParseKeyValues(config)) {
      if (key != "scale") throw InvalidConfig("digit_match: unknown key '" + key + "' (known: scale)");
      scale_ = ParseNumber(key, value);
    }
  }

  std::vector<double> Score(const std::vector<Sample>& batch) override {
    std::vector<double> scores;
    scores.reserve(batch.size());
    for (const Sample& s : batch) {
      const std::string_view answer = BoxedAnswer(s.response);
      const std::string_view reference = s.reference;
      if (reference.empty()) {
        scores.push_back(0.0);
        continue;
      }
      size_t same = 0;
      for (size_t i = 0; i < std::min(answer.size(), reference.size()); ++i) {
        same += answer[i] == reference[i] ? 1 : 0;
      }
      const size_t longest = std::max(answer.size(), reference.size());
      scores.push_back(scale_ * static_cast<double>(same) / static_cast<double>(longest));
    }
    return scores;
  }

 private:
  double scale_ = 1.0;
};

class BannedPhrases : public rlpost::plugin::RewardFunction {
 public:
  explicit BannedPhrases(std::string_view config) {
    for (const auto& [key, value] : ParseKeyValues(config)) {
      if (key == "phrases") {
        size_t start = 0;
        while (start <= value.size()) {
          size_t end = value.find('|', start);
          if (end == std::string::npos) end = value.size();
          if (end > start) phrases_.push_back(value.substr(start, end - start));
          start = end + 1;
        }
      } else if (key == "penalty") {
        penalty_ = ParseNumber(key, value);
      } else if (key == "cap") {
        cap_ = ParseNumber(key, value);
      } else {
        throw InvalidConfig("banned_phrases: unknown key '" + key +
                            "' (known: phrases, penalty, cap)");
      }
    }
    if (phrases_.empty()) throw InvalidConfig("banned_phrases: set phrases=a|b|...");
  }

  std::vector<double> Score(const std::vector<Sample>& batch) override {
    std::vector<double> scores;
    for (const Sample& s : batch) {
      double score = 0.0;
      for (const std::string& p : phrases_) {
        for (size_t at = s.response.find(p); at != std::string_view::npos;
             at = s.response.find(p, at + p.size())) {
          score -= penalty_;
        }
      }
      scores.push_back(std::max(score, -cap_));
    }
    return scores;
  }

 private:
  std::vector<std::string> phrases_;
  double penalty_ = 1.0, cap_ = 1.0;
};

}  // namespace

RLPOST_REWARD_PLUGIN("example", "1.0.0", registry) {
  registry.Add<DigitMatch>("digit_match");
  registry.Add<BannedPhrases>("banned_phrases");
}
