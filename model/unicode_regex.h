#pragma once
// A compiled PCRE2 pattern in UTF + UCP mode, so \p{L}, (?i:...) and the like
// follow Unicode properties as the Oniguruma patterns of Hugging Face
// tokenizer.json files expect; \s, \S, \w and \W are rewritten to
// Oniguruma's sets, which differ from PCRE2's (docs/tokenizers.md). Internal
// to model/. Immutable after Compile; FindAll may be called concurrently (each
// call owns its match data).

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rlpost {

class UnicodeRegex {
 public:
  // A match as [begin, end) byte offsets into the searched text.
  using Span = std::pair<size_t, size_t>;

  // Compiles `pattern`; with `literal`, the pattern is matched as plain text.
  // A pattern PCRE2 rejects is InvalidArgument naming the offset and reason.
  static absl::StatusOr<UnicodeRegex> Compile(std::string_view pattern, bool literal = false);

  // Appends every non-overlapping match in `text` (valid UTF-8), left to
  // right. After an empty match the search resumes one character later.
  // Invalid UTF-8 is InvalidArgument; a PCRE2 resource limit is Internal.
  absl::Status FindAll(std::string_view text, std::vector<Span>* matches) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct Code;
  UnicodeRegex(std::shared_ptr<const Code> code, std::string pattern)
      : code_(std::move(code)), pattern_(std::move(pattern)) {}

  std::shared_ptr<const Code> code_;
  std::string pattern_;
};

}  // namespace rlpost
