#pragma once
// ResultCache: a bounded LRU map from a verification request to its verdict,
// so that the same (kind, task, response, checker version) is judged once.
// RL groups often contain identical responses, and evaluation reruns ask the
// same questions again.
//
// The key is a 128-bit digest of the kind, the task (gold answer or code
// tests, limits, language), the response (or program) and the checker
// version, computed by ResultCache::KeyOf; the verifier version is part of
// the key so a new checker never answers from an old verdict.
//
// Thread-safety: every method may be called concurrently (one mutex).

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "rlpost/v1/verifier.pb.h"

namespace rlpost {

struct ResultCacheKey {
  uint64_t hi = 0;
  uint64_t lo = 0;
  friend bool operator==(const ResultCacheKey& a, const ResultCacheKey& b) {
    return a.hi == b.hi && a.lo == b.lo;
  }
  template <typename H>
  friend H AbslHashValue(H h, const ResultCacheKey& k) {
    return H::combine(std::move(h), k.hi, k.lo);
  }
};

class ResultCache {
 public:
  // `capacity` verdicts at most; 0 disables the cache (Lookup always misses,
  // Insert does nothing).
  explicit ResultCache(size_t capacity) : capacity_(capacity) {}

  // The key of `item` judged by a checker of `version`. The item's id and
  // deadline are not part of it.
  static ResultCacheKey KeyOf(const v1::VerifyItem& item, std::string_view kind,
                              std::string_view version);

  // The cached verdict (its id is the id of the item that filled it), and
  // counts a hit or a miss.
  std::optional<v1::Verdict> Lookup(const ResultCacheKey& key);
  // Stores `verdict`, evicting the least recently used entry when full.
  void Insert(const ResultCacheKey& key, const v1::Verdict& verdict);

  size_t capacity() const { return capacity_; }
  size_t size() const;
  int64_t hits() const;
  int64_t misses() const;

 private:
  using Entry = std::pair<ResultCacheKey, v1::Verdict>;
  const size_t capacity_;
  mutable absl::Mutex mu_;
  // Most recently used first.
  std::list<Entry> lru_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<ResultCacheKey, std::list<Entry>::iterator> index_ ABSL_GUARDED_BY(mu_);
  int64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rlpost
