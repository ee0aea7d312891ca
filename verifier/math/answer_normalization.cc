#include "verifier/math/answer_normalization.h"

#include <utility>
#include <vector>

#include "verifier/math/answer_extraction.h"
#include "verifier/math/latex_text.h"

namespace rlpost {
namespace math_internal {

namespace {

struct Rewrite {
  std::string_view from;
  std::string_view to;
};

// Rewrites every occurrence of a table entry, trying entries in order at each
// position. Entries that start with a backslash match whole control words
// only ("\left" does not match "\leftarrow"). "\\" (a row break) is copied as
// one unit so that "\\," is not read as "\" + "\,".
std::string ApplyRewrites(std::string_view in, const std::vector<Rewrite>& table) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    if (in[i] == '\\' && i + 1 < in.size() && in[i + 1] == '\\') {
      out.append("\\\\");
      i += 2;
      continue;
    }
    bool rewritten = false;
    for (const Rewrite& r : table) {
      bool hit = r.from.front() == '\\' ? CommandAt(in, i, r.from)
                                        : in.substr(i, r.from.size()) == r.from;
      if (hit) {
        out.append(r.to);
        i += r.from.size();
        rewritten = true;
        break;
      }
    }
    if (!rewritten) out.push_back(in[i++]);
  }
  return out;
}

bool DigitsAt(std::string_view in, size_t pos, size_t count) {
  if (pos + count > in.size()) return false;
  for (size_t k = 0; k < count; ++k) {
    if (!IsAsciiDigit(in[pos + k])) return false;
  }
  return pos + count == in.size() || !IsAsciiDigit(in[pos + count]);
}

// "10,\!080" and "10{,}080" are explicit thousands separators whatever the
// context, unlike a bare comma (see RemovePlainThousandsSeparators).
std::string RemoveLatexThousandsSeparators(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (i > 0 && IsAsciiDigit(in[i - 1])) {
      if (in.substr(i, 3) == ",\\!" && DigitsAt(in, i + 3, 3)) {
        i += 2;
        continue;
      }
      if (in.substr(i, 3) == "{,}" && DigitsAt(in, i + 3, 3)) {
        i += 2;
        continue;
      }
    }
    out.push_back(in[i]);
  }
  return out;
}

// Drops \text{...}-style wrappers but keeps their content: "\text{(B)}" is
// "(B)", "\mathrm{east}" is "east". One pass with a stack of the braces that
// belong to a dropped wrapper.
std::string UnwrapTextCommands(std::string_view in) {
  static const std::string_view kWrappers[] = {
      "\\text",   "\\textbf", "\\textit",   "\\textrm", "\\textnormal", "\\textsf",
      "\\mathrm", "\\mathbf", "\\mathit",   "\\mathsf", "\\mbox",       "\\boldsymbol"};
  std::string out;
  out.reserve(in.size());
  std::vector<bool> dropped_close;  // one entry per open '{'
  size_t i = 0;
  while (i < in.size()) {
    char c = in[i];
    if (c == '\\' && i + 1 < in.size() && (in[i + 1] == '{' || in[i + 1] == '}' ||
                                           in[i + 1] == '\\')) {
      out.append(in.substr(i, 2));  // escaped brace or row break: literal
      i += 2;
      continue;
    }
    if (c == '\\') {
      bool unwrapped = false;
      for (std::string_view w : kWrappers) {
        if (!CommandAt(in, i, w)) continue;
        size_t p = i + w.size();
        while (p < in.size() && IsAsciiSpace(in[p])) ++p;
        if (p < in.size() && in[p] == '{') {
          dropped_close.push_back(true);
          i = p + 1;
          unwrapped = true;
        }
        break;
      }
      if (unwrapped) continue;
    }
    if (c == '{') {
      dropped_close.push_back(false);
    } else if (c == '}' && !dropped_close.empty()) {
      bool drop = dropped_close.back();
      dropped_close.pop_back();
      if (drop) {
        ++i;
        continue;
      }
    }
    out.push_back(c);
    ++i;
  }
  return out;
}

// "5\\text{ cm}", "12\\mbox{ inches}^2": a trailing text wrapper holding only
// words after a number is a unit, and a unit does not change the answer.
// Only after a digit, so that "\\text{Evelyn}" or "x\\text{ is even}" keep
// their words.
std::string StripTrailingUnits(std::string s) {
  static const std::string_view kWrappers[] = {"\\text", "\\mbox", "\\mathrm", "\\textrm"};
  for (int round = 0; round < 2; ++round) {
    // Trailing '$', '.' and spaces go in later passes anyway.
    std::string_view view = s;
    while (!view.empty() && (view.back() == '$' || view.back() == '.' || IsAsciiSpace(view.back()))) {
      view.remove_suffix(1);
    }
    view = TrimSpace(view);
    size_t end = view.size();
    // An optional exponent on the unit: ^2, ^3, ^{2}.
    if (end >= 2 && view[end - 2] == '^' && IsAsciiDigit(view[end - 1])) {
      end -= 2;
    } else if (end >= 4 && view.substr(end - 4, 2) == "^{" && IsAsciiDigit(view[end - 2]) &&
               view[end - 1] == '}') {
      end -= 4;
    }
    if (end == 0 || view[end - 1] != '}') return s;
    size_t open = view.rfind('{', end - 1);
    if (open == std::string_view::npos) return s;
    std::string_view content = view.substr(open + 1, end - 1 - open - 1);
    bool words = !TrimSpace(content).empty();
    for (char c : content) words = words && (IsAsciiAlpha(c) || c == ' ' || c == '.');
    if (!words) return s;
    size_t command = std::string_view::npos;
    for (std::string_view w : kWrappers) {
      if (open >= w.size() && view.substr(open - w.size(), w.size()) == w) command = open - w.size();
    }
    if (command == std::string_view::npos) return s;
    std::string_view before = TrimSpace(view.substr(0, command));
    if (before.empty() || !IsAsciiDigit(before.back())) return s;
    s = std::string(before);
  }
  return s;
}

// True when `out` ends in a control word such as "\pi" (so a following letter
// would merge into it if the separating space were dropped).
bool EndsInControlWord(const std::string& out) {
  size_t k = out.size();
  while (k > 0 && IsAsciiAlpha(out[k - 1])) --k;
  return k < out.size() && k > 0 && out[k - 1] == '\\';
}

// Removes whitespace, except one space where it separates a control word
// from a letter ("\pi r" must not become "\pir").
std::string RemoveWhitespace(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    if (!IsAsciiSpace(in[i])) {
      out.push_back(in[i++]);
      continue;
    }
    while (i < in.size() && IsAsciiSpace(in[i])) ++i;
    if (i < in.size() && IsAsciiAlpha(in[i]) && EndsInControlWord(out)) out.push_back(' ');
  }
  return out;
}

// Braces a single-character argument: "\frac12" -> "\frac{1}{2}",
// "\sqrt3" -> "\sqrt{3}", and un-braces single-character scripts:
// "x^{2}" -> "x^2", so that each spelling has one form. One pass: when a
// \frac's first argument is braced, the position of its closing brace is
// marked, and the second argument is looked at when the scan gets there.
std::string CanonicalizeShorthand(std::string_view in) {
  const std::vector<size_t> match = MatchBraces(in);
  std::vector<bool> second_arg_follows(in.size(), false);
  std::string out;
  out.reserve(in.size() + 8);
  size_t i = 0;
  // Braces the single-character argument at `i`, if there is one.
  auto brace_single = [&]() -> bool {
    if (i < in.size() && (IsAsciiDigit(in[i]) || IsAsciiAlpha(in[i]))) {
      out.push_back('{');
      out.push_back(in[i++]);
      out.push_back('}');
      return true;
    }
    return false;
  };
  while (i < in.size()) {
    if (CommandAt(in, i, "\\frac")) {
      out.append("\\frac");
      i += 5;
      if (brace_single()) {
        brace_single();
      } else if (i < in.size() && in[i] == '{' && match[i] != kNoMatch) {
        second_arg_follows[match[i]] = true;
      }
      continue;
    }
    if (CommandAt(in, i, "\\sqrt")) {
      out.append("\\sqrt");
      i += 5;
      brace_single();
      continue;
    }
    if ((in[i] == '^' || in[i] == '_') && i + 3 < in.size() && in[i + 1] == '{' &&
        in[i + 3] == '}' && in[i + 2] != '\\' && in[i + 2] != '{' && in[i + 2] != '}') {
      out.push_back(in[i]);
      out.push_back(in[i + 2]);
      i += 4;
      continue;
    }
    bool check_second = second_arg_follows[i];
    out.push_back(in[i++]);
    if (check_second) brace_single();
  }
  return out;
}

// A whole answer "1,234" or "-12,345.5" is one number with thousands
// separators. Inside a tuple "(1,234)" the comma separates elements, so only
// whole-answer numbers are rewritten.
std::string RemovePlainThousandsSeparators(std::string s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t group = 0;
  while (i < s.size() && IsAsciiDigit(s[i])) ++i, ++group;
  if (group < 1 || group > 3) return s;
  bool any_comma = false;
  while (i < s.size() && s[i] == ',') {
    if (!DigitsAt(s, i + 1, 3)) return s;
    i += 4;
    any_comma = true;
  }
  if (!any_comma) return s;
  if (i < s.size()) {
    if (s[i] != '.') return s;
    ++i;
    while (i < s.size() && IsAsciiDigit(s[i])) ++i;
    if (i != s.size()) return s;
  }
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c != ',') out.push_back(c);
  }
  return out;
}

}  // namespace

std::string Normalize(std::string_view answer) {
  std::string s = UnwrapAnswerOnly(answer);
  s = ApplyRewrites(s, {
                           {"\xE2\x88\x92", "-"},  // U+2212 minus sign
                           {"\xC2\xB0", ""},       // U+00B0 degree sign
                       });
  s = RemoveLatexThousandsSeparators(s);
  s = ApplyRewrites(s, {
                           {"\\left.", ""},  {"\\right.", ""},     {"\\left", ""},
                           {"\\right", ""},  {"\\bigl", ""},       {"\\bigr", ""},
                           {"\\Bigl", ""},   {"\\Bigr", ""},       {"\\big", ""},
                           {"\\Big", ""},    {"\\,", ""},          {"\\!", ""},
                           {"\\;", ""},      {"\\:", ""},          {"\\ ", ""},
                           {"\\qquad", ""},  {"\\quad", ""},       {"\\displaystyle", ""},
                           {"\\dfrac", "\\frac"}, {"\\tfrac", "\\frac"}, {"\\leq", "\\le"},
                           {"\\geq", "\\ge"}, {"\\neq", "\\ne"},   {"\\degree", ""},
                           {"\\%", ""},      {"\\$", ""},          {"~", ""},
                       });
  // "x=1 \\text{ or } x=2" lists two solutions.
  s = ApplyRewrites(s, {
                           {"\\text{ or }", ","}, {"\\text{or}", ","},
                           {"\\text{ and }", ","}, {"\\text{and}", ","},
                       });
  s = StripTrailingUnits(std::move(s));
  s = UnwrapTextCommands(s);
  s = RemoveWhitespace(s);
  s = ApplyRewrites(s, {
                           {"^{\\circ}", ""}, {"^\\circ", ""}, {"\\circ", ""},
                           {"%", ""}, {"$", ""},
                       });
  s = CanonicalizeShorthand(s);
  while (!s.empty() && s.back() == '.') s.pop_back();
  s = RemovePlainThousandsSeparators(std::move(s));
  // "(B)" and "B" name the same multiple-choice option.
  if (s.size() == 3 && s[0] == '(' && s[2] == ')' && IsAsciiAlpha(s[1])) s = s.substr(1, 1);
  return s;
}

}  // namespace math_internal
}  // namespace rlpost
