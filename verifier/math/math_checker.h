#pragma once
// The math answer checker: decides whether a model's free-form response ends
// in the same final answer as a reference (gold) answer. It extracts the final
// answer from the response, normalises both sides (LaTeX spacing, wrappers,
// thousands separators, units, ...) and compares them as exact numbers,
// tuples/sets/intervals, assignments, inequalities, symbolic expressions
// (GiNaC) or normalised strings. See docs/verifier.md for the rules.
//
// Safe to call from any thread. The only shared state is GiNaC's, and the
// symbolic stage serialises it behind one mutex (so symbolic comparisons do
// not run in parallel within a process; MathWorkerPool spreads them over
// processes). Never throws; arbitrary bytes are valid input, and the work per
// call is bounded by the size caps in MathCheckOptions and the symbolic
// budgets; for a hard time bound use MathWorkerPool (math_worker_pool.h).

#include <cstddef>
#include <string>
#include <string_view>

namespace rlpost {

// Recorded with every verdict for lineage; bump when a change could flip a
// verdict.
constexpr char kMathVerifierVersion[] = "rlpost-math/0.2.0";

struct MathCheckOptions {
  // When no \boxed{}, <answer>, "final answer is" or "####" marker is found,
  // take the last number in the response. Off by default: it rewards
  // responses that never commit to an answer.
  bool fallback_to_last_number = false;
  // Relative tolerance for numbers that cannot be held exactly (huge
  // fractions). Exactly representable numbers are compared exactly.
  double relative_tolerance = 1e-9;
  // Only the last `max_response_bytes` of a response are searched for the
  // answer (the answer sits at the end; this bounds the work per item).
  size_t max_response_bytes = 64 * 1024;
  // References longer than this are rejected as malformed.
  size_t max_reference_bytes = 64 * 1024;
  // Test seam for MathWorkerPool: a worker given this option never answers,
  // so tests can exercise the hard deadline. CheckMathAnswer ignores it.
  bool debug_hang_for_test = false;
};

struct MathVerdict {
  enum class Status {
    kOk,        // compared; `correct` holds the result
    kNoAnswer,  // no final answer found in the response (counts as wrong)
    kError,     // the reference is unusable, or an internal failure
  };
  Status status = Status::kError;
  bool correct = false;
  // The extracted answer, normalised (empty when none was found).
  std::string extracted;
  // Which rule decided, or why there is no verdict.
  std::string reason;
};

// Judges `response` (a full model response) against `reference` (answer only,
// optionally wrapped in $...$, \(...\) or \boxed{...}).
MathVerdict CheckMathAnswer(std::string_view response, std::string_view reference,
                            const MathCheckOptions& options = {});

// The building blocks, exposed for debugging tools (rlctl verify) and tests.

// The final answer in a full response, raw (not normalised); empty when none.
std::string ExtractFinalAnswer(std::string_view response,
                               const MathCheckOptions& options = {});
// A gold answer with its $...$ / \(...\) / \boxed{...} wrappers removed.
std::string ExtractReferenceAnswer(std::string_view reference);
// The canonical string form that comparison works on.
std::string NormalizeMathAnswer(std::string_view answer);
// True when two answers (answer-only, raw or normalised) are equivalent.
bool MathAnswersEquivalent(std::string_view a, std::string_view b,
                           const MathCheckOptions& options = {});

}  // namespace rlpost
