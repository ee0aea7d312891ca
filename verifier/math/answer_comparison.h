#pragma once
// Equivalence of two normalised answers. An answer is parsed into a small
// tree (number, ordered tuple/interval/matrix, unordered set/list, or text),
// and two trees are compared by a fixed sequence of stages: identical text,
// then structure and exact numbers, then text. The symbolic stage (GiNaC)
// will slot in between the structural and the text stage; see
// docs/verifier.md. Internal to verifier/math.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "verifier/math/exact_number.h"

namespace rlpost {
namespace math_internal {

struct AnswerNode {
  enum class Type { kNumber, kSequence, kText };
  Type type = Type::kText;
  // The normalised text of this node (what the text stage compares).
  std::string text;
  std::optional<NumericValue> number;  // kNumber
  // kSequence: the delimiters ("(" ")", "[" ")", "\{" "\}", "pmatrix",
  // "" for a bare comma list, "\cup" for a union) and whether order matters.
  std::string open;
  std::string close;
  bool ordered = true;
  std::vector<AnswerNode> elements;
};

// Never fails: anything that is not a number or a sequence is text.
AnswerNode ParseAnswer(std::string_view normalized);

struct Comparison {
  bool equal = false;
  std::string reason;  // the rule that decided, for verdicts and debugging
};

Comparison CompareNormalized(std::string_view a, std::string_view b, double relative_tolerance);

}  // namespace math_internal
}  // namespace rlpost
