#include "model/added_tokens.h"

#include <utf8proc.h>

#include "model/unicode_text.h"

namespace rlpost {
namespace {

// Rust's char::is_whitespace (the Unicode White_Space property).
bool IsWhitespace(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

// Regex \w: letters, marks, decimal digits and connector punctuation.
bool IsWordChar(char32_t cp) {
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

// The code point that ends at text[end) (end > 0, valid UTF-8); *begin gets
// its first byte.
char32_t CharBefore(std::string_view text, size_t end, size_t* begin) {
  size_t b = end - 1;
  while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
  *begin = b;
  return DecodeUtf8(text, b, end - b);
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<AddedToken>& tokens) {
  nodes_.emplace_back();
  for (const AddedToken& token : tokens) {
    if (token.content.empty()) continue;
    int32_t node = 0;
    for (unsigned char c : token.content) {
      int32_t child = -1;
      for (const auto& [byte, index] : nodes_[node].children) {
        if (byte == c) child = index;
      }
      if (child < 0) {
        child = static_cast<int32_t>(nodes_.size());
        nodes_[node].children.emplace_back(c, child);
        nodes_.emplace_back();
      }
      node = child;
    }
    // A repeated content keeps the first token.
    if (nodes_[node].token < 0) {
      nodes_[node].token = static_cast<int32_t>(tokens_.size());
      tokens_.push_back(token);
    }
  }
}

int32_t AddedTokenMatcher::LongestAt(std::string_view text, size_t pos, size_t* end) const {
  int32_t node = 0;
  int32_t found = -1;
  for (size_t i = pos; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    int32_t child = -1;
    for (const auto& [byte, index] : nodes_[node].children) {
      if (byte == c) {
        child = index;
        break;
      }
    }
    if (child < 0) break;
    node = child;
    if (nodes_[node].token >= 0) {
      found = nodes_[node].token;
      *end = i + 1;
    }
  }
  return found;
}

void AddedTokenMatcher::Split(std::string_view text, std::vector<Segment>* segments) const {
  segments->clear();
  size_t plain_start = 0;  // start of the pending plain segment
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = 0;
    int32_t index = tokens_.empty() ? -1 : LongestAt(text, pos, &end);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[index];
    if (token.single_word) {
      size_t ignored = 0;
      bool word_before = pos > 0 && IsWordChar(CharBefore(text, pos, &ignored));
      size_t len = end < text.size() ? Utf8SequenceLength(text, end) : 0;
      bool word_after = len > 0 && IsWordChar(DecodeUtf8(text, end, len));
      if (word_before || word_after) {
        pos = end;  // the rejected match stays plain text
        continue;
      }
    }
    size_t token_start = pos;
    if (token.lstrip) {
      while (token_start > plain_start) {
        size_t begin = 0;
        if (!IsWhitespace(CharBefore(text, token_start, &begin))) break;
        token_start = begin;
      }
    }
    size_t token_end = end;
    if (token.rstrip) {
      while (token_end < text.size()) {
        size_t len = Utf8SequenceLength(text, token_end);
        if (len == 0 || !IsWhitespace(DecodeUtf8(text, token_end, len))) break;
        token_end += len;
      }
    }
    if (token_start > plain_start) {
      segments->push_back({text.substr(plain_start, token_start - plain_start), -1});
    }
    segments->push_back({text.substr(pos, end - pos), token.id});
    plain_start = pos = token_end;
  }
  if (plain_start < text.size()) {
    segments->push_back({text.substr(plain_start), -1});
  }
}

}  // namespace rlpost
