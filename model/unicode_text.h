#pragma once
// UTF-8 helpers and Unicode normalization for the BPE tokenizer (internal to
// model/; other components use model/bpe_tokenizer.h). Free functions without
// state; all thread-safe.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace rlpost {

// The four Unicode normalization forms of UAX #15.
enum class NormalizationForm { kNfc, kNfd, kNfkc, kNfkd };

// Length in bytes of the well-formed UTF-8 sequence at text[pos], or 0 when
// the bytes there are not well-formed UTF-8 (overlong forms, surrogates, code
// points above U+10FFFF and truncated sequences are all ill-formed).
size_t Utf8SequenceLength(std::string_view text, size_t pos);

// True when every byte of `text` belongs to a well-formed UTF-8 sequence.
bool IsValidUtf8(std::string_view text);

// Replaces each maximal ill-formed subpart with U+FFFD, as Unicode's
// "substitution of maximal subparts" (and Rust's String::from_utf8_lossy) do.
// Valid input is returned unchanged.
std::string SanitizeUtf8(std::string_view text);

// Decodes the well-formed UTF-8 sequence of length `len` at text[pos].
char32_t DecodeUtf8(std::string_view text, size_t pos, size_t len);

// Appends the UTF-8 encoding of `cp` (which must be a Unicode scalar value).
void AppendUtf8(char32_t cp, std::string* out);

// Applies `form` to valid UTF-8 text (utf8proc). Embedded NUL bytes are kept.
// Returns InvalidArgument when utf8proc rejects the text.
absl::StatusOr<std::string> NormalizeUnicode(std::string_view text, NormalizationForm form);

}  // namespace rlpost
