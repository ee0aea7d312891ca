#include "model/unicode_text.h"

#include <utf8proc.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace rlpost {
namespace {

inline bool IsContinuation(unsigned char b) { return (b & 0xC0) == 0x80; }

// True when `text` is already in `form` for a cheap reason: all ASCII is
// invariant under every form, and every code point below U+0300 is NFC
// (the first NFC_Quick_Check=No/Maybe code point is U+0300), i.e. no byte
// >= 0xCC occurs.
bool TriviallyNormalized(std::string_view text, NormalizationForm form) {
  const unsigned char limit = form == NormalizationForm::kNfc ? 0xCC : 0x80;
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= limit) return false;
  }
  return true;
}

}  // namespace

size_t Utf8SequenceLength(std::string_view text, size_t pos) {
  const size_t n = text.size();
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char b0 = byte(pos);
  if (b0 < 0x80) return 1;
  if (b0 < 0xC2) return 0;  // continuation byte or overlong 2-byte lead
  if (b0 < 0xE0) {
    return pos + 1 < n && IsContinuation(byte(pos + 1)) ? 2 : 0;
  }
  if (b0 < 0xF0) {
    if (pos + 2 >= n) return 0;
    unsigned char b1 = byte(pos + 1);
    // E0 needs A0..BF (no overlong), ED needs 80..9F (no surrogates).
    unsigned char lo = b0 == 0xE0 ? 0xA0 : 0x80;
    unsigned char hi = b0 == 0xED ? 0x9F : 0xBF;
    if (b1 < lo || b1 > hi || !IsContinuation(byte(pos + 2))) return 0;
    return 3;
  }
  if (b0 < 0xF5) {
    if (pos + 3 >= n) return 0;
    unsigned char b1 = byte(pos + 1);
    // F0 needs 90..BF (no overlong), F4 needs 80..8F (<= U+10FFFF).
    unsigned char lo = b0 == 0xF0 ? 0x90 : 0x80;
    unsigned char hi = b0 == 0xF4 ? 0x8F : 0xBF;
    if (b1 < lo || b1 > hi || !IsContinuation(byte(pos + 2)) || !IsContinuation(byte(pos + 3))) {
      return 0;
    }
    return 4;
  }
  return 0;
}

bool IsValidUtf8(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t len = Utf8SequenceLength(text, pos);
    if (len == 0) return false;
    pos += len;
  }
  return true;
}

std::string SanitizeUtf8(std::string_view text) {
  if (IsValidUtf8(text)) return std::string(text);
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(text.size() + 8);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t len = Utf8SequenceLength(text, pos);
    if (len > 0) {
      out.append(text.substr(pos, len));
      pos += len;
      continue;
    }
    // A maximal subpart is the longest prefix of a well-formed sequence:
    // a valid lead byte followed by the continuation bytes it accepts.
    unsigned char b0 = static_cast<unsigned char>(text[pos]);
    size_t need = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b0 >= 0xC2 && b0 < 0xE0) {
      need = 1;
    } else if (b0 >= 0xE0 && b0 < 0xF0) {
      need = 2;
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 < 0xF5) {
      need = 3;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    }
    size_t consumed = 1;
    for (size_t k = 0; k < need && pos + consumed < text.size(); ++k) {
      unsigned char b = static_cast<unsigned char>(text[pos + consumed]);
      bool ok = k == 0 ? (b >= lo && b <= hi) : IsContinuation(b);
      if (!ok) break;
      ++consumed;
    }
    out.append(kReplacement);
    pos += consumed;
  }
  return out;
}

char32_t DecodeUtf8(std::string_view text, size_t pos, size_t len) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[pos + i]); };
  switch (len) {
    case 1:
      return byte(0);
    case 2:
      return ((byte(0) & 0x1Fu) << 6) | (byte(1) & 0x3Fu);
    case 3:
      return ((byte(0) & 0x0Fu) << 12) | ((byte(1) & 0x3Fu) << 6) | (byte(2) & 0x3Fu);
    default:
      return ((byte(0) & 0x07u) << 18) | ((byte(1) & 0x3Fu) << 12) | ((byte(2) & 0x3Fu) << 6) |
             (byte(3) & 0x3Fu);
  }
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

absl::StatusOr<std::string> NormalizeUnicode(std::string_view text, NormalizationForm form) {
  if (TriviallyNormalized(text, form)) return std::string(text);
  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalizationForm::kNfc:
      options |= UTF8PROC_COMPOSE;
      break;
    case NormalizationForm::kNfd:
      options |= UTF8PROC_DECOMPOSE;
      break;
    case NormalizationForm::kNfkc:
      options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
      break;
    case NormalizationForm::kNfkd:
      options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
      break;
  }
  utf8proc_uint8_t* result = nullptr;
  utf8proc_ssize_t len = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                      static_cast<utf8proc_ssize_t>(text.size()), &result,
                                      static_cast<utf8proc_option_t>(options));
  if (len < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unicode normalization failed: ", utf8proc_errmsg(len)));
  }
  std::string out(reinterpret_cast<const char*>(result), static_cast<size_t>(len));
  std::free(result);
  return out;
}

}  // namespace rlpost
