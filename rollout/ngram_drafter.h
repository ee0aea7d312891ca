#pragma once
// Draft tokens by suffix lookup (prompt lookup / n-gram drafting): the
// continuation that followed the latest occurrence of the current suffix in
// any document of a prompt group (the prompt, the sibling samples, earlier
// rollouts of the same prompt). The proposals are certain drafts for
// VerifyDraft (spec_sampling.h), so they never change what is sampled, only
// how many tokens one forward pass can emit.
//
// The index maps every n-gram (n = min_n..max_n) to the position right after
// its most recent occurrence. An occurrence is registered only once its
// continuation token exists, so the suffix of a document is never matched to
// itself at the document's end. Appending a token costs O(max_n); Propose
// costs O(max_n * max_n + k).
//
// Ownership and memory: the index owns copies of its documents. Memory is
// O(tokens * (max_n - min_n + 1)); the caller bounds it by what it adds (one
// index per prompt group, a bounded set of earlier rollouts), and
// `max_indexed_tokens` is a hard stop: past it, tokens are still stored but
// no new occurrences are indexed.
//
// Thread-safety: none inside. Const methods may run concurrently with each
// other; AddDocument and Append need external exclusion from every other call.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

namespace rlpost {

struct NgramIndexOptions {
  int min_n = 1;  // shortest suffix worth a lookup
  int max_n = 4;  // longest suffix tried (tried first)
  size_t max_indexed_tokens = size_t{1} << 22;
};

// 1 <= min_n <= max_n <= 64; the error names the field.
absl::Status ValidateNgramIndexOptions(const NgramIndexOptions& options);

class NgramIndex {
 public:
  // `options` must pass ValidateNgramIndexOptions (out-of-range values are
  // clamped into range).
  explicit NgramIndex(NgramIndexOptions options = {});

  // Takes a document, indexes it, and returns its id (0, 1, ... in order).
  int AddDocument(std::vector<int> tokens);

  // Extends document `doc` (an id from AddDocument) by one token: an accepted
  // token of a rollout. Drafts are appended only once verified.
  void Append(int doc, int token);

  // Up to k tokens that followed the most recent indexed occurrence of the
  // longest suffix of `doc` (max_n down to min_n) found in any document.
  // Fewer than k when that occurrence runs into the end of its document;
  // empty when no suffix matches or k <= 0.
  std::vector<int> Propose(int doc, int k) const;

  int num_documents() const { return static_cast<int>(docs_.size()); }
  const std::vector<int>& document(int doc) const { return docs_[static_cast<size_t>(doc)]; }

 private:
  // Registers the n-grams that end right before docs_[doc][end].
  void IndexContinuation(int doc, size_t end);

  NgramIndexOptions options_;
  std::vector<std::vector<int>> docs_;
  // Hash of an n-gram -> (doc << 32 | position after the occurrence). A hash
  // collision at worst hides an older n-gram; Propose compares tokens.
  absl::flat_hash_map<uint64_t, uint64_t> latest_;
  size_t indexed_tokens_ = 0;
};

}  // namespace rlpost
