#include "model/char_tokenizer.h"

#include "absl/strings/str_cat.h"

namespace rlpost {

CharTokenizer::CharTokenizer() = default;

absl::StatusOr<std::vector<int>> CharTokenizer::Encode(std::string_view text) const {
  std::vector<int> ids;
  ids.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ids.push_back(kFirstChar);
    } else if (c >= 0x20 && c <= 0x7E) {
      ids.push_back(kFirstChar + 1 + (c - 0x20));
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "character tokenizer: byte 0x", absl::Hex(c), " at offset ", i,
          " is not printable ASCII"));
    }
  }
  return ids;
}

std::string CharTokenizer::Decode(const std::vector<int>& ids) const {
  std::string out;
  out.reserve(ids.size());
  for (int id : ids) {
    if (id < kFirstChar) continue;
    if (id == kFirstChar) {
      out.push_back('\n');
    } else if (id < kFirstChar + kNumChars) {
      out.push_back(static_cast<char>(0x20 + id - kFirstChar - 1));
    } else {
      out.push_back('?');
    }
  }
  return out;
}

}  // namespace rlpost
