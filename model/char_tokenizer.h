#pragma once
// The character tokenizer of the built-in task: one token per printable ASCII
// character plus newline, and three special tokens. No LibTorch, no gRPC, so
// the controller and the CLI can use it too. Immutable; thread-safe.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace rlpost {

class CharTokenizer {
 public:
  static constexpr int kPad = 0;
  static constexpr int kBos = 1;
  static constexpr int kEos = 2;

  CharTokenizer();

  int vocab_size() const { return kFirstChar + kNumChars; }

  // Encodes text; characters outside printable ASCII and '\n' are an error
  // naming the offending byte offset.
  absl::StatusOr<std::vector<int>> Encode(std::string_view text) const;
  // Decodes ids; special tokens are dropped, unknown ids become '?'.
  std::string Decode(const std::vector<int>& ids) const;

 private:
  static constexpr int kFirstChar = 3;
  static constexpr int kNumChars = 96;  // '\n' and 0x20..0x7E
};

}  // namespace rlpost
