#include "verifier/math/answer_comparison.h"

#include <cstdint>
#include <utility>

#include "verifier/math/latex_text.h"
#include "verifier/math/symbolic_equivalence.h"

namespace rlpost {
namespace math_internal {

namespace {

// Bounds on structure, so that hostile answers ("((((...", a million commas)
// cost little: deeper or larger structures are compared as text.
constexpr int kMaxDepth = 8;
constexpr size_t kMaxElements = 1000;
// Unordered matching is quadratic; larger unordered lists compare in order.
constexpr size_t kMaxUnorderedElements = 64;
// Node comparisons per answer pair. Nested unordered lists multiply the
// work; once the budget is spent, only the text stages run.
constexpr int64_t kComparisonBudget = 200000;
// GiNaC comparisons per answer pair (each is bounded by SymbolicLimits).
constexpr int kSymbolicBudget = 16;

bool IsOpener(char c) { return c == '(' || c == '[' || c == '{'; }
bool IsCloser(char c) { return c == ')' || c == ']' || c == '}'; }

// Splits at every top-level occurrence of `separator` (bracket depth 0).
// Returns false when brackets are unbalanced or there are too many parts.
bool SplitTopLevel(std::string_view text, std::string_view separator,
                   std::vector<std::string_view>* parts) {
  parts->clear();
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (IsOpener(c)) {
      ++depth;
    } else if (IsCloser(c)) {
      if (--depth < 0) return false;
    } else if (depth == 0 && text.substr(i, separator.size()) == separator &&
               (separator.front() != '\\' || CommandAt(text, i, separator))) {
      parts->push_back(text.substr(start, i - start));
      start = i + separator.size();
      i = start - 1;
      if (parts->size() > kMaxElements) return false;
    }
  }
  if (depth != 0) return false;
  parts->push_back(text.substr(start));
  return true;
}

// True when the bracket at 0 closes exactly at the last character (with any
// closer: "(3,4]" is one half-open interval).
bool EnclosedByBrackets(std::string_view text) {
  if (text.size() < 2 || !IsOpener(text.front()) || !IsCloser(text.back())) return false;
  int depth = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (IsOpener(text[i])) {
      ++depth;
    } else if (IsCloser(text[i])) {
      if (--depth == 0) return i == text.size() - 1;
    }
  }
  return false;
}

AnswerNode ParseNode(std::string_view text, int depth);

// Checks every part before parsing any, so that a rejected structure costs
// no recursive work (keeping ParseNode linear per nesting level).
bool FillElements(const std::vector<std::string_view>& parts, int depth, AnswerNode* node) {
  for (std::string_view part : parts) {
    if (part.empty()) return false;
  }
  for (std::string_view part : parts) node->elements.push_back(ParseNode(part, depth + 1));
  return true;
}

std::optional<AnswerNode> ParseMatrix(std::string_view text, int depth) {
  for (std::string_view env : {"pmatrix", "bmatrix", "matrix"}) {
    std::string begin = "\\begin{" + std::string(env) + "}";
    std::string end = "\\end{" + std::string(env) + "}";
    if (text.size() < begin.size() + end.size() || text.substr(0, begin.size()) != begin ||
        text.substr(text.size() - end.size()) != end) {
      continue;
    }
    std::string_view body = text.substr(begin.size(), text.size() - begin.size() - end.size());
    std::vector<std::string_view> rows;
    if (!SplitTopLevel(body, "\\\\", &rows)) return std::nullopt;
    if (rows.size() > 1 && rows.back().empty()) rows.pop_back();  // trailing "\\"
    AnswerNode node;
    node.type = AnswerNode::Type::kSequence;
    node.text = std::string(text);
    node.open = "matrix";
    node.close = "matrix";
    for (std::string_view row : rows) {
      std::vector<std::string_view> cells;
      if (!SplitTopLevel(row, "&", &cells)) return std::nullopt;
      AnswerNode row_node;
      row_node.type = AnswerNode::Type::kSequence;
      row_node.text = std::string(row);
      row_node.open = "row";
      row_node.close = "row";
      if (!FillElements(cells, depth + 1, &row_node)) return std::nullopt;
      node.elements.push_back(std::move(row_node));
    }
    return node;
  }
  return std::nullopt;
}

AnswerNode ParseNode(std::string_view text, int depth) {
  AnswerNode node;
  node.text = std::string(text);
  if (depth > kMaxDepth) return node;

  if (std::optional<AnswerNode> matrix = ParseMatrix(text, depth)) return *std::move(matrix);

  std::vector<std::string_view> parts;
  // A union of intervals: order does not matter.
  if (SplitTopLevel(text, "\\cup", &parts) && parts.size() > 1) {
    AnswerNode u = node;
    u.type = AnswerNode::Type::kSequence;
    u.open = u.close = "\\cup";
    u.ordered = false;
    if (FillElements(parts, depth, &u)) return u;
  }
  // A bare list "1,-2" (solutions of an equation): order does not matter.
  if (SplitTopLevel(text, ",", &parts) && parts.size() > 1) {
    AnswerNode list = node;
    list.type = AnswerNode::Type::kSequence;
    list.ordered = false;
    if (FillElements(parts, depth, &list)) return list;
  }
  // A set "\{1,2\}" (unordered) or a tuple / interval "(1,2]" (ordered).
  bool is_set = text.size() >= 4 && text.substr(0, 2) == "\\{" &&
                text.substr(text.size() - 2) == "\\}";
  if (is_set || EnclosedByBrackets(text)) {
    size_t delimiter = is_set ? 2 : 1;
    std::string_view inner = text.substr(delimiter, text.size() - 2 * delimiter);
    if (SplitTopLevel(inner, ",", &parts) && (parts.size() > 1 || is_set)) {
      AnswerNode seq = node;
      seq.type = AnswerNode::Type::kSequence;
      seq.open = std::string(text.substr(0, delimiter));
      seq.close = std::string(text.substr(text.size() - delimiter));
      seq.ordered = !is_set;
      if (FillElements(parts, depth, &seq)) return seq;
    }
  }
  if (std::optional<NumericValue> number = ParseNumber(text)) {
    node.type = AnswerNode::Type::kNumber;
    node.number = std::move(number);
  }
  return node;
}

// "Plain text" is a word answer ("Evelyn", "even"), compared ignoring case;
// anything with LaTeX or single-letter variables ("2k" vs "2K") keeps case.
bool IsPlainText(std::string_view text) {
  size_t run = 0;
  size_t longest_run = 0;
  for (char c : text) {
    if (c == '\\' || c == '^' || c == '_') return false;
    run = IsAsciiAlpha(c) ? run + 1 : 0;
    if (run > longest_run) longest_run = run;
  }
  return longest_run >= 2;
}

bool EqualIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// The stages. Each returns a decision or nullopt to pass to the next one.
using Decision = std::optional<Comparison>;

struct CompareContext {
  double tolerance = 0;
  int64_t budget = kComparisonBudget;
  int symbolic_budget = kSymbolicBudget;
};

Comparison CompareNodes(const AnswerNode& a, const AnswerNode& b, CompareContext* ctx, int depth);

Decision IdenticalStage(const AnswerNode& a, const AnswerNode& b) {
  if (a.text == b.text) return Comparison{true, "identical after normalisation"};
  return std::nullopt;
}

Decision NumberStage(const AnswerNode& a, const AnswerNode& b, double tolerance) {
  if (a.type != AnswerNode::Type::kNumber || b.type != AnswerNode::Type::kNumber) {
    return std::nullopt;
  }
  switch (CompareNumbers(*a.number, *b.number, tolerance)) {
    case NumericMatch::kExactEqual: return Comparison{true, "numbers equal exactly"};
    case NumericMatch::kExactDifferent: return Comparison{false, "numbers differ"};
    case NumericMatch::kWithinTolerance:
      return Comparison{true, "numbers equal within relative tolerance"};
    case NumericMatch::kOutsideTolerance:
      return Comparison{false, "numbers differ beyond relative tolerance"};
    case NumericMatch::kIncomparable: return std::nullopt;
  }
  return std::nullopt;
}

Decision SequenceStage(const AnswerNode& a, const AnswerNode& b, CompareContext* ctx, int depth) {
  if (a.type != AnswerNode::Type::kSequence || b.type != AnswerNode::Type::kSequence) {
    return std::nullopt;
  }
  if (a.open != b.open || a.close != b.close || a.ordered != b.ordered) {
    return Comparison{false, "different kinds of tuple/interval/set"};
  }
  if (a.elements.size() != b.elements.size()) {
    return Comparison{false, "different number of elements"};
  }
  const size_t n = a.elements.size();
  if (a.ordered || n > kMaxUnorderedElements) {
    for (size_t i = 0; i < n; ++i) {
      Comparison c = CompareNodes(a.elements[i], b.elements[i], ctx, depth + 1);
      if (!c.equal) {
        return Comparison{false, "element " + std::to_string(i + 1) + " differs: " + c.reason};
      }
    }
    return Comparison{true, "all elements equal"};
  }
  // Greedy matching is enough: element equivalence is (up to tolerance) an
  // equivalence relation.
  std::vector<bool> used(n, false);
  for (size_t i = 0; i < n; ++i) {
    bool found = false;
    for (size_t j = 0; j < n && !found; ++j) {
      if (used[j]) continue;
      if (CompareNodes(a.elements[i], b.elements[j], ctx, depth + 1).equal) {
        used[j] = found = true;
      }
    }
    if (!found) {
      return Comparison{false, "element '" + a.elements[i].text + "' has no match"};
    }
  }
  return Comparison{true, "all elements equal (any order)"};
}

Decision PlainTextStage(const AnswerNode& a, const AnswerNode& b) {
  if (IsPlainText(a.text) && IsPlainText(b.text) && EqualIgnoringCase(a.text, b.text)) {
    return Comparison{true, "text equal ignoring case"};
  }
  return std::nullopt;
}

// GiNaC sees only what neither identical text nor exact numbers nor
// structure could decide, so the fast paths keep their throughput.
Decision SymbolicStage(const AnswerNode& a, const AnswerNode& b, CompareContext* ctx) {
  if (a.type == AnswerNode::Type::kSequence || b.type == AnswerNode::Type::kSequence) {
    return std::nullopt;
  }
  if (ctx->symbolic_budget <= 0) return std::nullopt;
  --ctx->symbolic_budget;
  SymbolicComparison s = CompareSymbolic(a.text, b.text, ctx->tolerance);
  switch (s.match) {
    case SymbolicMatch::kEqual: return Comparison{true, s.reason};
    case SymbolicMatch::kDifferent: return Comparison{false, s.reason};
    case SymbolicMatch::kUndecided: return std::nullopt;
  }
  return std::nullopt;
}

Comparison CompareNodes(const AnswerNode& a, const AnswerNode& b, CompareContext* ctx, int depth) {
  if (Decision d = IdenticalStage(a, b)) return *d;
  if (depth <= kMaxDepth && --ctx->budget > 0) {
    if (Decision d = NumberStage(a, b, ctx->tolerance)) return *d;
    if (Decision d = SequenceStage(a, b, ctx, depth)) return *d;
  }
  if (Decision d = PlainTextStage(a, b)) return *d;
  if (depth <= kMaxDepth && ctx->budget > 0) {
    if (Decision d = SymbolicStage(a, b, ctx)) return *d;
  }
  return Comparison{false, "answers differ"};
}

// "x=5" and "x\in[-2,7]" state the answer for one variable; the value is
// what is compared with a bare answer.
std::optional<std::pair<char, std::string_view>> SplitAssignment(std::string_view text) {
  if (text.size() < 3 || !IsAsciiAlpha(text[0])) return std::nullopt;
  if (text[1] == '=') return std::make_pair(text[0], text.substr(2));
  if (CommandAt(text, 1, "\\in") && text.size() > 4) return std::make_pair(text[0], text.substr(4));
  return std::nullopt;
}

}  // namespace

AnswerNode ParseAnswer(std::string_view normalized) { return ParseNode(normalized, 0); }

Comparison CompareNormalized(std::string_view a, std::string_view b, double relative_tolerance) {
  auto assign_a = SplitAssignment(a);
  auto assign_b = SplitAssignment(b);
  if (assign_a && assign_b) {
    if (assign_a->first != assign_b->first) return Comparison{false, "different variables"};
    a = assign_a->second;
    b = assign_b->second;
  } else if (assign_a && b.find('=') == std::string_view::npos) {
    a = assign_a->second;
  } else if (assign_b && a.find('=') == std::string_view::npos) {
    b = assign_b->second;
  }
  CompareContext ctx;
  ctx.tolerance = relative_tolerance;
  return CompareNodes(ParseAnswer(a), ParseAnswer(b), &ctx, 0);
}

}  // namespace math_internal
}  // namespace rlpost
