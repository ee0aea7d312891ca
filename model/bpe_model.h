#pragma once
// The "model" part of a Hugging Face tokenizer.json of type BPE: the vocab,
// the ranked merges, and the merge loop that turns one pre-tokenized piece
// into token ids. Internal to model/ (other components use
// model/bpe_tokenizer.h).
//
// Thread-safety: immutable after FromJson except for the piece cache, which
// is guarded by its own mutex; EncodePiece may be called concurrently.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"

namespace rlpost {

class BpeModel {
 public:
  // Builds the model from tokenizer.json's "model" object. Supports type
  // "BPE" with merges as "a b" strings or [a, b] pairs, unk_token, fuse_unk,
  // byte_fallback and ignore_merges. A non-zero dropout and non-empty
  // continuing_subword_prefix / end_of_word_suffix are InvalidArgument, as is
  // any other model type and a merge whose parts or result are not in the
  // vocab.
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(const nlohmann::json& model);

  // Appends the ids of `piece` (one pre-token, valid UTF-8). Characters that
  // are not in the vocab become <0xXX> byte tokens (byte_fallback), else the
  // unk token (fused when fuse_unk), else nothing, as Hugging Face does.
  void EncodePiece(std::string_view piece, std::vector<int32_t>* ids) const;

  // Vocab lookups; -1 / nullptr when absent.
  int32_t TokenToId(std::string_view token) const;
  const std::string* IdToToken(int32_t id) const;
  // One past the largest vocab id.
  int32_t id_limit() const { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  BpeModel() = default;
  // The ids of the characters of `piece` before any merge.
  void InitialSymbols(std::string_view piece, std::vector<int32_t>* symbols) const;
  // Applies the merges, lowest rank first and leftmost among equal ranks.
  void MergeSymbols(std::vector<int32_t>* symbols) const;
  int32_t CharToId(char32_t cp, std::string_view utf8) const;

  absl::flat_hash_map<std::string, int32_t> token_to_id_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_token_;
  // Ids of single-character tokens below U+0400 (covers the byte-level
  // alphabet), -1 when absent; other characters go through token_to_id_.
  std::vector<int32_t> small_char_id_;
  absl::flat_hash_map<uint64_t, Merge> merges_;
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::vector<int32_t> byte_fallback_ids_;  // id of <0xXX>, -1 when absent

  // Piece -> ids for short pieces; cleared when it grows past a bound.
  mutable absl::Mutex cache_mu_;
  mutable absl::flat_hash_map<std::string, std::vector<int32_t>> cache_ ABSL_GUARDED_BY(cache_mu_);
};

}  // namespace rlpost
