#pragma once
// A byte-level BPE tokenizer loaded from a Hugging Face tokenizer.json (the
// files Qwen3 and DeepSeek-V3 ship), producing the same ids as the Hugging
// Face `tokenizers` library. No LibTorch; see docs/tokenizers.md for what is
// supported and how it was verified.
//
// Encoding: invalid UTF-8 input bytes become U+FFFD (maximal subparts, as
// Rust's from_utf8_lossy) → added tokens that are not `normalized` are cut
// out of the raw text → each remaining segment is normalized → `normalized`
// added tokens are cut out → pre-tokenizer → BPE. Encode never inserts BOS,
// EOS or other special tokens: it is `encode(text, add_special_tokens=False)`.
// The post_processor (only null and ByteLevel are accepted; ByteLevel only
// adjusts offsets) therefore has no effect on ids.
//
// Thread-safety: immutable after loading except an internal piece cache with
// its own lock; every method may be called concurrently. Copies are cheap and
// share the tables.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rlpost {

class BpeTokenizer {
 public:
  // Loads tokenizer.json. Malformed JSON and unsupported components
  // (normalizer, pre_tokenizer, model, post_processor or decoder types, BPE
  // options) are InvalidArgument naming the component; an unreadable file is
  // NotFound.
  static absl::StatusOr<BpeTokenizer> FromJsonFile(const std::string& path);
  static absl::StatusOr<BpeTokenizer> FromJsonText(std::string_view json_text);

  // The ids of `text` (see the header comment for the pipeline). Fails only
  // for an internal regex or normalization error (Internal / InvalidArgument).
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text) const;

  // The text of `ids`, through the tokenizer's decoder (ByteLevel: tokens
  // back to bytes, then invalid UTF-8 to U+FFFD; null: tokens joined by
  // spaces). With `skip_special_tokens`, added tokens marked special are left
  // out. An id outside [0, vocab_size()) or without a token is
  // InvalidArgument naming the id and the vocab size.
  absl::StatusOr<std::string> Decode(const std::vector<int32_t>& ids,
                                     bool skip_special_tokens) const;

  // One past the largest id of the vocab and the added tokens.
  int32_t vocab_size() const;
  // Added tokens first, then the BPE vocab.
  std::optional<int32_t> TokenToId(std::string_view token) const;
  std::optional<std::string> IdToToken(int32_t id) const;
  // Ids of the added tokens marked special, ascending.
  const std::vector<int32_t>& special_token_ids() const;
  bool IsSpecialToken(int32_t id) const;

  // The loaded tables; opaque outside bpe_tokenizer.cc.
  struct State;

 private:
  explicit BpeTokenizer(std::shared_ptr<const State> state) : state_(std::move(state)) {}

  std::shared_ptr<const State> state_;
};

}  // namespace rlpost
