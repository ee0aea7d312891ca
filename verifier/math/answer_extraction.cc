#include "verifier/math/answer_extraction.h"

#include <vector>

#include "verifier/math/latex_text.h"

namespace rlpost {
namespace math_internal {

namespace {

// The argument of the last non-empty \boxed / \fbox. Empty boxes are skipped
// because responses often echo the instruction "put your answer in
// \boxed{}"; unclosed ones (a response cut off mid-answer) are skipped too.
bool FindLastBoxed(std::string_view text, std::string* out) {
  const std::vector<size_t> match = MatchBraces(text);
  for (size_t i = text.size(); i-- > 0;) {
    if (text[i] != '\\') continue;
    size_t name_end;
    if (CommandAt(text, i, "\\boxed")) {
      name_end = i + 6;
    } else if (CommandAt(text, i, "\\fbox")) {
      name_end = i + 5;
    } else {
      continue;
    }
    size_t p = name_end;
    while (p < text.size() && IsAsciiSpace(text[p])) ++p;
    if (p < text.size() && text[p] == '{') {
      if (match[p] == kNoMatch) continue;
      std::string_view inner = TrimSpace(text.substr(p + 1, match[p] - p - 1));
      if (inner.empty()) continue;
      out->assign(inner);
      return true;
    }
    // "\boxed 5": TeX takes one token; accept a run up to space or '$'.
    if (p == name_end || p >= text.size()) continue;
    size_t end = p;
    while (end < text.size() && !IsAsciiSpace(text[end]) && text[end] != '$') ++end;
    if (end == p) continue;
    out->assign(text.substr(p, end - p));
    return true;
  }
  return false;
}

bool FindAnswerTag(std::string_view text, std::string* out) {
  size_t close = FindLastIgnoringCase(text, "</answer>");
  if (close == std::string_view::npos) return false;
  size_t open = FindLastIgnoringCase(text.substr(0, close), "<answer>");
  if (open == std::string_view::npos) return false;
  std::string_view inner = TrimSpace(text.substr(open + 8, close - open - 8));
  if (inner.empty()) return false;
  out->assign(inner);
  return true;
}

// The rest of the line after `pos`, or the first $...$ span on it.
std::string_view AnswerAfter(std::string_view text, size_t pos) {
  std::string_view rest = text.substr(pos);
  size_t eol = rest.find('\n');
  if (eol != std::string_view::npos) rest = rest.substr(0, eol);
  rest = TrimSpace(rest);
  while (!rest.empty() && (rest.front() == ':' || rest.front() == '*')) {
    rest = TrimSpace(rest.substr(1));
  }
  if (!rest.empty() && rest.front() == '$') {
    size_t start = rest.size() > 1 && rest[1] == '$' ? 2 : 1;
    size_t end = rest.find('$', start);
    if (end != std::string_view::npos) return TrimSpace(rest.substr(start, end - start));
  }
  // Markdown emphasis and sentence punctuation are not part of the answer.
  while (!rest.empty() && (rest.back() == '.' || rest.back() == '*')) {
    rest = TrimSpace(rest.substr(0, rest.size() - 1));
  }
  return rest;
}

bool FindFinalAnswerPhrase(std::string_view text, std::string* out) {
  size_t best = std::string_view::npos;
  size_t best_end = 0;
  for (std::string_view phrase : {std::string_view("final answer is"),
                                  std::string_view("final answer:")}) {
    size_t at = FindLastIgnoringCase(text, phrase);
    if (at != std::string_view::npos && (best == std::string_view::npos || at > best)) {
      best = at;
      best_end = at + phrase.size();
    }
  }
  if (best == std::string_view::npos) return false;
  std::string_view answer = AnswerAfter(text, best_end);
  if (answer.empty()) return false;
  out->assign(answer);
  return true;
}

bool FindHashes(std::string_view text, std::string* out) {
  size_t at = text.rfind("####");
  if (at == std::string_view::npos) return false;
  size_t start = at + 4;
  while (start < text.size() && text[start] == '#') ++start;
  std::string_view answer = AnswerAfter(text, start);
  if (answer.empty()) return false;
  out->assign(answer);
  return true;
}

// The last run that looks like a number: optional '-', digits with optional
// thousands commas, optional decimal part.
bool FindLastNumber(std::string_view text, std::string* out) {
  size_t i = text.size();
  while (i > 0 && !IsAsciiDigit(text[i - 1])) --i;
  if (i == 0) return false;
  size_t end = i;
  size_t begin = end;
  while (begin > 0 && (IsAsciiDigit(text[begin - 1]) || text[begin - 1] == '.' ||
                       (text[begin - 1] == ',' && begin >= 2 && IsAsciiDigit(text[begin - 2])))) {
    --begin;
  }
  while (begin < end && !IsAsciiDigit(text[begin])) ++begin;
  if (begin > 0 && text[begin - 1] == '-') --begin;
  out->assign(text.substr(begin, end - begin));
  return true;
}

// Strips one enclosing pair `open`...`close`; false when absent.
bool StripPair(std::string_view* text, std::string_view open, std::string_view close) {
  if (text->size() < open.size() + close.size()) return false;
  if (text->substr(0, open.size()) != open) return false;
  if (text->substr(text->size() - close.size()) != close) return false;
  *text = text->substr(open.size(), text->size() - open.size() - close.size());
  return true;
}

// "$x$" but not "$x$ and $y$", whose outer dollars belong to two spans.
bool StripDollars(std::string_view* text) {
  std::string_view inner = *text;
  if (!StripPair(&inner, "$", "$") || inner.find('$') != std::string_view::npos) return false;
  *text = inner;
  return true;
}

}  // namespace

const char* AnswerSourceName(AnswerSource source) {
  switch (source) {
    case AnswerSource::kNone: return "none";
    case AnswerSource::kBoxed: return "boxed";
    case AnswerSource::kAnswerTag: return "answer tag";
    case AnswerSource::kFinalAnswer: return "final answer phrase";
    case AnswerSource::kHashes: return "####";
    case AnswerSource::kLastNumber: return "last number";
  }
  return "none";
}

ExtractedAnswer ExtractFromResponse(std::string_view response, size_t max_bytes,
                                    bool fallback_to_last_number) {
  if (response.size() > max_bytes) response = response.substr(response.size() - max_bytes);
  ExtractedAnswer result;
  if (FindLastBoxed(response, &result.text)) {
    result.source = AnswerSource::kBoxed;
  } else if (FindAnswerTag(response, &result.text)) {
    result.source = AnswerSource::kAnswerTag;
  } else if (FindFinalAnswerPhrase(response, &result.text)) {
    result.source = AnswerSource::kFinalAnswer;
  } else if (FindHashes(response, &result.text)) {
    result.source = AnswerSource::kHashes;
  } else if (fallback_to_last_number && FindLastNumber(response, &result.text)) {
    result.source = AnswerSource::kLastNumber;
  }
  return result;
}

std::string UnwrapAnswerOnly(std::string_view answer) {
  // Work on one view of the original text so that the brace table, built
  // once, stays valid: nested wrappers then cost linear time, not quadratic.
  const std::vector<size_t> match = MatchBraces(answer);
  size_t begin = 0;
  size_t end = answer.size();
  auto trim = [&]() {
    while (begin < end && IsAsciiSpace(answer[begin])) ++begin;
    while (end > begin && IsAsciiSpace(answer[end - 1])) --end;
  };
  trim();
  for (;;) {
    std::string_view text = answer.substr(begin, end - begin);
    std::string_view stripped = text;
    if (StripPair(&stripped, "$$", "$$") || StripDollars(&stripped) ||
        StripPair(&stripped, "\\(", "\\)") || StripPair(&stripped, "\\[", "\\]")) {
      begin += static_cast<size_t>(stripped.data() - text.data());
      end = begin + stripped.size();
      trim();
      continue;
    }
    size_t name = CommandAt(text, 0, "\\boxed") ? 6 : CommandAt(text, 0, "\\fbox") ? 5 : 0;
    if (name == 0) break;
    size_t open = begin + name;
    while (open < end && IsAsciiSpace(answer[open])) ++open;
    if (open >= end || answer[open] != '{' || match[open] != end - 1) break;
    begin = open + 1;
    end -= 1;
    trim();
  }
  return std::string(answer.substr(begin, end - begin));
}

}  // namespace math_internal
}  // namespace rlpost
