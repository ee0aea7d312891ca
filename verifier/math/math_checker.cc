#include "verifier/math/math_checker.h"

#include <cmath>
#include <exception>
#include <string>

#include "verifier/math/answer_comparison.h"
#include "verifier/math/answer_extraction.h"
#include "verifier/math/answer_normalization.h"

namespace rlpost {

namespace {

using math_internal::AnswerSource;

MathVerdict Verdict(MathVerdict::Status status, std::string reason) {
  MathVerdict v;
  v.status = status;
  v.reason = std::move(reason);
  return v;
}

MathVerdict Check(std::string_view response, std::string_view reference,
                  const MathCheckOptions& options) {
  if (!(options.relative_tolerance >= 0) || !std::isfinite(options.relative_tolerance)) {
    return Verdict(MathVerdict::Status::kError,
                   "relative_tolerance must be a finite number >= 0");
  }
  if (reference.size() > options.max_reference_bytes) {
    return Verdict(MathVerdict::Status::kError,
                   "reference answer is " + std::to_string(reference.size()) +
                       " bytes; the limit is " + std::to_string(options.max_reference_bytes));
  }
  const std::string gold = math_internal::Normalize(reference);
  if (gold.empty()) {
    return Verdict(MathVerdict::Status::kError, "reference answer is empty");
  }
  math_internal::ExtractedAnswer extracted = math_internal::ExtractFromResponse(
      response, options.max_response_bytes, options.fallback_to_last_number);
  if (extracted.source == AnswerSource::kNone) {
    return Verdict(MathVerdict::Status::kNoAnswer,
                   "no final answer found (looked for \\boxed{}, <answer>, "
                   "'final answer is', '####')");
  }
  std::string answer = math_internal::Normalize(extracted.text);
  if (answer.empty()) {
    return Verdict(MathVerdict::Status::kNoAnswer,
                   std::string(math_internal::AnswerSourceName(extracted.source)) +
                       " answer is empty after normalisation");
  }
  math_internal::Comparison comparison =
      math_internal::CompareNormalized(answer, gold, options.relative_tolerance);
  MathVerdict verdict;
  verdict.status = MathVerdict::Status::kOk;
  verdict.correct = comparison.equal;
  verdict.extracted = std::move(answer);
  verdict.reason = std::string(math_internal::AnswerSourceName(extracted.source)) +
                   " answer: " + comparison.reason;
  return verdict;
}

}  // namespace

// The checker is pure computation over strings; the only exception it can
// meet is std::bad_alloc. None may escape into a gRPC handler, so each entry
// point turns one into a failed result.

MathVerdict CheckMathAnswer(std::string_view response, std::string_view reference,
                            const MathCheckOptions& options) {
  try {
    return Check(response, reference, options);
  } catch (const std::exception& e) {
    return Verdict(MathVerdict::Status::kError, std::string("internal error: ") + e.what());
  } catch (...) {
    return Verdict(MathVerdict::Status::kError, "internal error");
  }
}

std::string ExtractFinalAnswer(std::string_view response, const MathCheckOptions& options) {
  try {
    return math_internal::ExtractFromResponse(response, options.max_response_bytes,
                                              options.fallback_to_last_number)
        .text;
  } catch (...) {
    return std::string();
  }
}

std::string ExtractReferenceAnswer(std::string_view reference) {
  try {
    return math_internal::UnwrapAnswerOnly(reference);
  } catch (...) {
    return std::string();
  }
}

std::string NormalizeMathAnswer(std::string_view answer) {
  try {
    return math_internal::Normalize(answer);
  } catch (...) {
    return std::string();
  }
}

bool MathAnswersEquivalent(std::string_view a, std::string_view b,
                           const MathCheckOptions& options) {
  try {
    std::string na = math_internal::Normalize(a);
    std::string nb = math_internal::Normalize(b);
    if (na.empty() || nb.empty()) return false;
    return math_internal::CompareNormalized(na, nb, options.relative_tolerance).equal;
  } catch (...) {
    return false;
  }
}

}  // namespace rlpost
