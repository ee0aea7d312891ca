#pragma once
// Finding the final answer in a model response, and unwrapping a gold answer.
// Internal to verifier/math; the public entry points are in math_checker.h.

#include <string>
#include <string_view>

namespace rlpost {
namespace math_internal {

// Which marker the answer was found by (reported in verdict reasons).
enum class AnswerSource {
  kNone,
  kBoxed,        // last non-empty \boxed{...} / \fbox{...}
  kAnswerTag,    // last <answer>...</answer>
  kFinalAnswer,  // "final answer is X" / "final answer: X"
  kHashes,       // GSM8K "#### X"
  kLastNumber,   // opt-in fallback
};

const char* AnswerSourceName(AnswerSource source);

struct ExtractedAnswer {
  AnswerSource source = AnswerSource::kNone;
  std::string text;  // raw, not normalised
};

// Searches only the last `max_bytes` of `response`.
ExtractedAnswer ExtractFromResponse(std::string_view response, size_t max_bytes,
                                    bool fallback_to_last_number);

// Removes whitespace and any number of enclosing $...$, $$...$$, \(...\),
// \[...\] and whole-string \boxed{...} / \fbox{...} wrappers.
std::string UnwrapAnswerOnly(std::string_view answer);

}  // namespace math_internal
}  // namespace rlpost
