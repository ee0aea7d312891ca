#pragma once
// Canonical string form of an answer: what the comparison stages parse and,
// as the last resort, compare character by character. Internal to
// verifier/math (the public entry point is NormalizeMathAnswer).
//
// Every pass is linear in its input; the whole pipeline is a fixed sequence of
// passes, so normalisation is linear too.

#include <string>
#include <string_view>

namespace rlpost {
namespace math_internal {

// Unwraps $...$ / \boxed{...}, then: drops LaTeX spacing, \left/\right and
// sizing commands, \text{}-style wrappers (keeping their content), degree
// marks, percent and dollar signs, thousands separators, whitespace and
// trailing periods; rewrites \dfrac/\tfrac to \frac and brace-less shorthand
// (\frac12, \sqrt2, x^{2}) to one spelling; turns "(B)" into "B".
std::string Normalize(std::string_view answer);

}  // namespace math_internal
}  // namespace rlpost
