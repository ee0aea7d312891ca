#include "verifier/math/latex_text.h"

namespace rlpost {
namespace math_internal {

namespace {

// A brace preceded by an odd number of backslashes is a literal ("\{").
bool IsEscaped(std::string_view text, size_t pos) {
  size_t backslashes = 0;
  while (pos > backslashes && text[pos - backslashes - 1] == '\\') ++backslashes;
  return backslashes % 2 == 1;
}

char ToLowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

std::vector<size_t> MatchBraces(std::string_view text) {
  std::vector<size_t> match(text.size(), kNoMatch);
  std::vector<size_t> open;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '{' && text[i] != '}') continue;
    if (IsEscaped(text, i)) continue;
    if (text[i] == '{') {
      open.push_back(i);
    } else if (!open.empty()) {
      match[open.back()] = i;
      open.pop_back();
    }
  }
  return match;
}

size_t FindClosingBrace(std::string_view text, size_t open) {
  if (open >= text.size() || text[open] != '{') return kNoMatch;
  size_t depth = 0;
  for (size_t i = open; i < text.size(); ++i) {
    if ((text[i] != '{' && text[i] != '}') || IsEscaped(text, i)) continue;
    if (text[i] == '{') {
      ++depth;
    } else if (--depth == 0) {
      return i;
    }
  }
  return kNoMatch;
}

bool CommandAt(std::string_view text, size_t pos, std::string_view command) {
  if (pos > text.size() || text.size() - pos < command.size()) return false;
  if (text.substr(pos, command.size()) != command) return false;
  size_t end = pos + command.size();
  // Only control words can be continued; "\\," or "\\{" end at one symbol.
  bool is_word = command.size() > 1 && IsAsciiAlpha(command.back());
  return !is_word || end == text.size() || !IsAsciiAlpha(text[end]);
}

std::string_view TrimSpace(std::string_view text) {
  size_t begin = 0;
  size_t end = text.size();
  while (begin < end && IsAsciiSpace(text[begin])) ++begin;
  while (end > begin && IsAsciiSpace(text[end - 1])) --end;
  return text.substr(begin, end - begin);
}

size_t FindLastIgnoringCase(std::string_view haystack, std::string_view needle) {
  if (needle.empty() || needle.size() > haystack.size()) return std::string_view::npos;
  for (size_t i = haystack.size() - needle.size() + 1; i-- > 0;) {
    size_t k = 0;
    while (k < needle.size() && ToLowerAscii(haystack[i + k]) == ToLowerAscii(needle[k])) ++k;
    if (k == needle.size()) return i;
  }
  return std::string_view::npos;
}

}  // namespace math_internal
}  // namespace rlpost
