#pragma once
// Symbolic equivalence of two normalised answers through GiNaC: the stage
// that decides what identical text and exact numbers could not
// (\frac{\sqrt{2}}{2} vs \frac{1}{\sqrt{2}}, x^2+2x+1 vs (x+1)^2,
// \sin^2x+\cos^2x vs 1). Internal to verifier/math.
//
// An answer is parsed by our own bounded parser (LaTeX and plain syntax:
// \frac, \sqrt, \sqrt[n], ^, \pi, e, i, trig/log/exp, implicit
// multiplication, `*`, `sqrt(2)`), and every operation is checked against
// the budgets below BEFORE GiNaC sees it: GiNaC cannot be interrupted, so an
// expression that could be expensive (9^{9^{9^9}}, (a+b+c)^{60} expanded,
// 5000!) is refused, and the pair is left undecided. Equality is decided by
// normal(a-b) == 0, or, when that is inconclusive, by evaluating both sides
// at seeded pseudo-random points with bounded precision.
//
// Thread safety: GiNaC keeps global state (reference counts of shared
// constants, Digits, remember tables) without locks, so every use of GiNaC
// in this process is serialised by SymbolicEngineMutex(). CompareSymbolic
// takes it itself; it is safe to call from any thread. Code that forks
// (MathWorkerPool) holds the mutex across fork() so that a child never
// inherits it locked.

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/synchronization/mutex.h"

namespace rlpost {
namespace math_internal {

// Budgets of the symbolic stage (documented in docs/verifier.md).
struct SymbolicLimits {
  static constexpr size_t kMaxInputBytes = 1024;      // per side, normalised
  static constexpr int kMaxNodes = 400;               // parsed operations per side
  static constexpr int kMaxDepth = 64;                // parser recursion
  static constexpr size_t kMaxIntegerDigits = 1000;   // one literal
  static constexpr long kMaxNumericPowerBits = 40000; // |base bits| * |exponent|
  static constexpr long kMaxExponent = 10000;         // numeric exponents
  static constexpr long kMaxSymbolicExponent = 1000;  // integer powers of non-numbers
  static constexpr double kMaxDegree = 1000;          // polynomial degree estimate
  static constexpr long kMaxFactorial = 1000;
  static constexpr double kMaxExpandedTerms = 1e5;    // estimate; above: numeric only
  static constexpr double kMaxNormalDegree = 256;     // degree estimate; above: numeric only
  static constexpr int kEvaluationDigits = 30;
  static constexpr int kEvaluationPoints = 4;
};

enum class SymbolicMatch { kEqual, kDifferent, kUndecided };

struct SymbolicComparison {
  SymbolicMatch match = SymbolicMatch::kUndecided;
  std::string reason;
};

// Compares two normalised answers (single expressions or equations
// "lhs=rhs"; equations are equal when lhs-rhs agree up to a non-zero
// constant factor). kUndecided when either side is not an expression this
// stage understands or a budget refuses it. Values at the evaluation points
// are compared with `relative_tolerance`.
SymbolicComparison CompareSymbolic(std::string_view a, std::string_view b,
                                   double relative_tolerance);

// True when `text` parses as a symbolic expression within the budgets (for
// tests and for deciding whether the stage applies).
bool ParsesAsSymbolic(std::string_view text);

// Serialises all GiNaC use in the process (see the header comment).
absl::Mutex& SymbolicEngineMutex();

}  // namespace math_internal
}  // namespace rlpost
