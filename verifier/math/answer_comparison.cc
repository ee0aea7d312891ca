#include "verifier/math/answer_comparison.h"

#include <algorithm>
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

// "x=5", "f(x)=x^2", "a_1=3" and "x\\in[-2,7]" state the answer for one
// variable: {left side, value}.
std::optional<std::pair<std::string_view, std::string_view>> SplitAssignment(
    std::string_view text) {
  if (text.size() < 3 || !IsAsciiAlpha(text[0])) return std::nullopt;
  size_t end = 1;  // the left side is text[0, end)
  if (text[1] == '_' && text.size() > 3) {
    end = 3;
  } else if (text[1] == '(') {
    size_t close = text.find(')', 2);
    if (close == std::string_view::npos || close > 16 ||
        text.substr(2, close - 2).find('=') != std::string_view::npos) {
      return std::nullopt;
    }
    end = close + 1;
  }
  if (end < text.size() && text[end] == '=' && end + 1 < text.size()) {
    return std::make_pair(text.substr(0, end), text.substr(end + 1));
  }
  if (CommandAt(text, end, "\\in") && text.size() > end + 3) {
    return std::make_pair(text.substr(0, end), text.substr(end + 3));
  }
  return std::nullopt;
}

bool HasEquals(std::string_view text) { return text.find('=') != std::string_view::npos; }

// "x=5" vs "5" compares the value; "x=5" vs "y=5" differ.
Decision AssignmentStage(const AnswerNode& a, const AnswerNode& b, CompareContext* ctx,
                         int depth) {
  auto assign_a = SplitAssignment(a.text);
  auto assign_b = SplitAssignment(b.text);
  if (!assign_a && !assign_b) return std::nullopt;
  if (assign_a && assign_b) {
    if (assign_a->first != assign_b->first) return Comparison{false, "different variables"};
    return CompareNodes(ParseNode(assign_a->second, depth + 1),
                        ParseNode(assign_b->second, depth + 1), ctx, depth + 1);
  }
  if (assign_a && !HasEquals(b.text)) {
    return CompareNodes(ParseNode(assign_a->second, depth + 1), b, ctx, depth + 1);
  }
  if (assign_b && !HasEquals(a.text)) {
    return CompareNodes(a, ParseNode(assign_b->second, depth + 1), ctx, depth + 1);
  }
  return std::nullopt;
}

// An inequality "x<3", "3>x", "-1\\le x<2" as operands and relations, with
// '>' chains reversed into '<' chains so that "3>x" reads "x<3".
bool SplitRelations(std::string_view text, std::vector<std::string_view>* operands,
                    std::vector<std::string>* relations) {
  operands->clear();
  relations->clear();
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (IsOpener(c)) ++depth;
    if (IsCloser(c)) --depth;
    if (depth != 0) continue;
    size_t width = 0;
    std::string relation;
    if (c == '<' || c == '>') {
      width = 1;
      relation = std::string(1, c);
    } else {
      for (std::string_view command : {"\\le", "\\ge", "\\lt", "\\gt"}) {
        if (CommandAt(text, i, command)) {
          width = command.size();
          relation = command == "\\lt" ? "<" : command == "\\gt" ? ">" : std::string(command);
          break;
        }
      }
    }
    if (width == 0) continue;
    operands->push_back(text.substr(start, i - start));
    relations->push_back(relation);
    start = i + width;
    i = start - 1;
    if (relations->size() > 4) return false;
  }
  if (relations->empty()) return false;
  operands->push_back(text.substr(start));
  bool greater = true;
  for (const std::string& r : *relations) greater = greater && (r == ">" || r == "\\ge");
  if (greater) {
    std::reverse(operands->begin(), operands->end());
    std::reverse(relations->begin(), relations->end());
    for (std::string& r : *relations) r = r == ">" ? "<" : "\\le";
  }
  for (std::string_view operand : *operands) {
    if (operand.empty()) return false;
  }
  return true;
}

Decision InequalityStage(const AnswerNode& a, const AnswerNode& b, CompareContext* ctx,
                         int depth) {
  if (a.type != AnswerNode::Type::kText || b.type != AnswerNode::Type::kText) {
    return std::nullopt;
  }
  std::vector<std::string_view> ops_a, ops_b;
  std::vector<std::string> rel_a, rel_b;
  if (!SplitRelations(a.text, &ops_a, &rel_a) || !SplitRelations(b.text, &ops_b, &rel_b)) {
    return std::nullopt;
  }
  if (rel_a != rel_b) return Comparison{false, "different inequalities"};
  for (size_t i = 0; i < ops_a.size(); ++i) {
    Comparison c = CompareNodes(ParseNode(ops_a[i], depth + 1), ParseNode(ops_b[i], depth + 1),
                                ctx, depth + 1);
    if (!c.equal) return Comparison{false, "inequality sides differ: " + c.reason};
  }
  return Comparison{true, "equivalent inequalities"};
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
    if (Decision d = AssignmentStage(a, b, ctx, depth)) return *d;
    if (Decision d = InequalityStage(a, b, ctx, depth)) return *d;
  }
  if (Decision d = PlainTextStage(a, b)) return *d;
  if (depth <= kMaxDepth && ctx->budget > 0) {
    if (Decision d = SymbolicStage(a, b, ctx)) return *d;
  }
  return Comparison{false, "answers differ"};
}

}  // namespace

AnswerNode ParseAnswer(std::string_view normalized) { return ParseNode(normalized, 0); }

Comparison CompareNormalized(std::string_view a, std::string_view b, double relative_tolerance) {
  CompareContext ctx;
  ctx.tolerance = relative_tolerance;
  return CompareNodes(ParseAnswer(a), ParseAnswer(b), &ctx, 0);
}

}  // namespace math_internal
}  // namespace rlpost
