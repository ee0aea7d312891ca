#pragma once
// The "pre_tokenizer" of a Hugging Face tokenizer.json: splits normalized
// text into the pieces that BPE encodes one by one. Supports null, Sequence,
// Split (Regex or String pattern; behaviors Removed, Isolated,
// MergedWithPrevious, MergedWithNext, Contiguous; invert) and ByteLevel
// (add_prefix_space, use_regex; trim_offsets only affects offsets, which this
// tokenizer does not report). Internal to model/. Immutable; thread-safe.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/unicode_regex.h"
#include "nlohmann/json.hpp"

namespace rlpost {

class PreTokenizer {
 public:
  // Any other type is InvalidArgument naming it.
  static absl::StatusOr<PreTokenizer> FromJson(const nlohmann::json& config);

  // Replaces `pieces` with the pre-tokens of `text` (valid UTF-8).
  absl::Status Split(std::string_view text, std::vector<std::string>* pieces) const;

  // True when a ByteLevel step maps bytes to the byte-level alphabet.
  bool byte_level() const { return byte_level_; }

 private:
  enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
  struct Step {
    enum class Kind { kSplit, kByteLevel } kind;
    // kSplit: pattern, behavior, invert. kByteLevel: pattern (GPT-2's regex,
    // used when use_regex), add_prefix_space.
    std::vector<UnicodeRegex> pattern;  // zero or one
    Behavior behavior = Behavior::kIsolated;
    bool invert = false;
    bool use_regex = false;
    bool add_prefix_space = false;
  };

  static absl::Status AddSteps(const nlohmann::json& config, std::vector<Step>* steps);
  static absl::Status SplitPiece(const Step& step, const std::string& piece,
                                 std::vector<std::string>* out);

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace rlpost
