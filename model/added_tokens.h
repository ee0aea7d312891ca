#pragma once
// The "added_tokens" of a Hugging Face tokenizer.json (special tokens such as
// "<|im_start|>" and non-special ones such as "<think>") and the matcher that
// cuts them out of text before pre-tokenization, so they always encode to
// their own id. Internal to model/. Immutable; thread-safe.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rlpost {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  // Matching flags, as in Hugging Face's AddedToken.
  bool lstrip = false;       // swallow whitespace before the token
  bool rstrip = false;       // swallow whitespace after the token
  bool single_word = false;  // only match when not inside a word
  bool normalized = false;   // match against normalized text
};

// Leftmost-longest matching of a set of added tokens (a byte trie), as
// Hugging Face's aho-corasick matcher does.
class AddedTokenMatcher {
 public:
  struct Segment {
    std::string_view text;  // a slice of the matched text
    int32_t token_id;       // the added token's id, or -1 for plain text
  };

  AddedTokenMatcher() = default;
  // `tokens` are matched by `content` (which the caller has normalized for
  // the normalized=true set). Empty contents are ignored.
  explicit AddedTokenMatcher(const std::vector<AddedToken>& tokens);

  bool empty() const { return tokens_.empty(); }

  // Cuts `text` (valid UTF-8) into plain segments and token matches, in order.
  // Whitespace swallowed by lstrip / rstrip belongs to no segment. A
  // single_word token that touches a word character is left in the text.
  void Split(std::string_view text, std::vector<Segment>* segments) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;
    int32_t token = -1;  // index into tokens_
  };
  // Index into tokens_ of the longest token at text[pos], or -1; sets *end.
  int32_t LongestAt(std::string_view text, size_t pos, size_t* end) const;

  std::vector<Node> nodes_;
  std::vector<AddedToken> tokens_;
};

}  // namespace rlpost
