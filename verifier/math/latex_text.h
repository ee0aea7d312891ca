#pragma once
// Small scanning helpers over LaTeX-ish answer text, shared by extraction and
// normalisation. Internal to verifier/math. Every helper is linear in the
// input, so that adversarial text (thousands of unclosed braces) stays cheap.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace rlpost {
namespace math_internal {

constexpr size_t kNoMatch = static_cast<size_t>(-1);

// For every '{' in `text`, the index of its matching '}' (kNoMatch when
// unclosed); kNoMatch for every other position. Escaped braces ("\{", "\}")
// are ignored, so a set literal does not unbalance the text around it.
std::vector<size_t> MatchBraces(std::string_view text);

// Index of the '}' matching the '{' at `open`, scanning forward; kNoMatch
// when unclosed. Linear in the scanned length: for one-off lookups only.
size_t FindClosingBrace(std::string_view text, size_t open);

// True when `text` holds the control word `command` (e.g. "\\left") at `pos`
// and the next character does not continue the word ("\\leftarrow" is not
// "\\left").
bool CommandAt(std::string_view text, size_t pos, std::string_view command);

inline bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }
inline bool IsAsciiAlpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
inline bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view TrimSpace(std::string_view text);

// Case-insensitive search for the last occurrence of `needle` (ASCII).
size_t FindLastIgnoringCase(std::string_view haystack, std::string_view needle);

}  // namespace math_internal
}  // namespace rlpost
