#include "model/unicode_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/strings/str_cat.h"
#include "model/unicode_text.h"

namespace rlpost {

struct UnicodeRegex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

namespace {

std::string Pcre2Message(int error_code) {
  PCRE2_UCHAR buffer[256];
  int n = pcre2_get_error_message(error_code, buffer, sizeof(buffer));
  if (n < 0) return absl::StrCat("PCRE2 error ", error_code);
  return std::string(reinterpret_cast<const char*>(buffer), static_cast<size_t>(n));
}

struct MatchDataDeleter {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};

// Oniguruma's Unicode \s (what tokenizer.json patterns were written for):
// TAB..CR, NEL and the Z categories. PCRE2's UCP \s also has U+180E.
constexpr char kSpaceSet[] = R"(\t\n\x0B\f\r\x{85}\p{Z})";
// Oniguruma's Unicode \w: letters, marks, decimal digits, connector
// punctuation. PCRE2's UCP \w has every \p{N} and no marks.
constexpr char kWordSet[] = R"(\p{L}\p{M}\p{Nd}\p{Pc})";

// Rewrites \s, \S, \w and \W to explicit sets with Oniguruma's meaning.
// \S and \W inside a bracket class are left to PCRE2 (no real file uses them).
std::string OnigurumaToPcre2(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 32);
  bool in_class = false;
  size_t class_start = 0;  // index just after '[' or '[^'
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      char e = pattern[++i];
      const char* set = e == 's' || e == 'S' ? kSpaceSet : kWordSet;
      if (e == 's' || e == 'w') {
        absl::StrAppend(&out, in_class ? "" : "[", set, in_class ? "" : "]");
      } else if ((e == 'S' || e == 'W') && !in_class) {
        absl::StrAppend(&out, "[^", set, "]");
      } else {
        out.push_back(c);
        out.push_back(e);
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out.push_back(c);
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out.push_back(pattern[++i]);
      class_start = i + 1;
      continue;
    }
    if (in_class && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      size_t end = pattern.find(":]", i + 2);
      if (end != std::string_view::npos) {
        out.append(pattern.substr(i, end + 2 - i));
        i = end + 1;
        continue;
      }
    }
    if (in_class && c == ']' && i != class_start) in_class = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

absl::StatusOr<UnicodeRegex> UnicodeRegex::Compile(std::string_view pattern, bool literal) {
  // PCRE2_LITERAL rejects PCRE2_UCP (which only matters for classes).
  uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  const std::string translated = literal ? std::string(pattern) : OnigurumaToPcre2(pattern);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()),
                                   translated.size(), options, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("regex '", std::string(pattern),
                                                   "': ", Pcre2Message(error_code), " (at offset ",
                                                   error_offset, " of '", translated, "')"));
  }
  // JIT is an optimization only: when it is unavailable pcre2_match
  // interprets the pattern.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  auto holder = std::make_shared<Code>();
  holder->code = code;
  return UnicodeRegex(std::move(holder), std::string(pattern));
}

absl::Status UnicodeRegex::FindAll(std::string_view text, std::vector<Span>* matches) const {
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(
      pcre2_match_data_create_from_pattern(code_->code, nullptr));
  if (data == nullptr) return absl::ResourceExhaustedError("regex: out of memory");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  // PCRE2 validates the whole subject on each call unless told not to: check
  // once here, then skip the check for the remaining calls.
  if (!IsValidUtf8(text)) {
    return absl::InvalidArgumentError("regex: subject is not valid UTF-8");
  }
  uint32_t flags = PCRE2_NO_UTF_CHECK;
  while (start <= text.size()) {
    int rc = pcre2_match(code_->code, subject, text.size(), start, flags, data.get(), nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      // The JIT's fixed stack ran out (pathological input): interpret instead.
      rc = pcre2_match(code_->code, subject, text.size(), start, flags | PCRE2_NO_JIT, data.get(),
                       nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) {
      if ((flags & PCRE2_NOTEMPTY_ATSTART) == 0) break;
      // No non-empty match at `start` after an empty one: move one character on.
      flags = PCRE2_NO_UTF_CHECK;
      if (start >= text.size()) break;
      size_t len = Utf8SequenceLength(text, start);
      start += len == 0 ? 1 : len;
      continue;
    }
    if (rc < 0) {
      return absl::InternalError(absl::StrCat("regex '", pattern_, "': ", Pcre2Message(rc)));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    size_t begin = ovector[0], end = ovector[1];
    matches->emplace_back(begin, end);
    start = end;
    flags = PCRE2_NO_UTF_CHECK;
    if (begin == end) flags |= PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED;
  }
  return absl::OkStatus();
}

}  // namespace rlpost
