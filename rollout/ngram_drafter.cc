#include "rollout/ngram_drafter.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/seed.h"

namespace rlpost {
namespace {

constexpr int kMaxN = 64;
constexpr uint64_t kHashStart = 0x6A09E667F3BCC909ull;

// Hashing runs backwards from the token before the continuation, so the hash
// of the n-gram extends that of the (n-1)-gram; different n differ by mixing.
inline uint64_t ExtendHash(uint64_t h, int token) {
  return SplitMix64(h ^ static_cast<uint32_t>(token));
}

inline uint64_t PackLocation(int doc, size_t pos) {
  return static_cast<uint64_t>(static_cast<uint32_t>(doc)) << 32 | static_cast<uint32_t>(pos);
}

}  // namespace

absl::Status ValidateNgramIndexOptions(const NgramIndexOptions& options) {
  if (options.min_n < 1 || options.min_n > kMaxN) {
    return absl::InvalidArgumentError(
        absl::StrCat("ngram min_n must be in [1, ", kMaxN, "], got ", options.min_n));
  }
  if (options.max_n < options.min_n || options.max_n > kMaxN) {
    return absl::InvalidArgumentError(absl::StrCat("ngram max_n must be in [min_n = ",
                                                   options.min_n, ", ", kMaxN, "], got ",
                                                   options.max_n));
  }
  return absl::OkStatus();
}

NgramIndex::NgramIndex(NgramIndexOptions options) : options_(options) {
  options_.min_n = std::clamp(options_.min_n, 1, kMaxN);
  options_.max_n = std::clamp(options_.max_n, options_.min_n, kMaxN);
}

int NgramIndex::AddDocument(std::vector<int> tokens) {
  const int doc = static_cast<int>(docs_.size());
  docs_.push_back(std::move(tokens));
  const size_t len = docs_.back().size();
  for (size_t end = 1; end < len; ++end) IndexContinuation(doc, end);
  return doc;
}

void NgramIndex::Append(int doc, int token) {
  std::vector<int>& tokens = docs_[static_cast<size_t>(doc)];
  tokens.push_back(token);
  if (tokens.size() > 1) IndexContinuation(doc, tokens.size() - 1);
}

void NgramIndex::IndexContinuation(int doc, size_t end) {
  if (indexed_tokens_ >= options_.max_indexed_tokens) return;
  ++indexed_tokens_;
  const std::vector<int>& tokens = docs_[static_cast<size_t>(doc)];
  const uint64_t location = PackLocation(doc, end);
  const size_t longest = std::min(end, static_cast<size_t>(options_.max_n));
  uint64_t h = kHashStart;
  for (size_t n = 1; n <= longest; ++n) {
    h = ExtendHash(h, tokens[end - n]);
    if (n >= static_cast<size_t>(options_.min_n)) latest_[h] = location;
  }
}

std::vector<int> NgramIndex::Propose(int doc, int k) const {
  if (k <= 0) return {};
  const std::vector<int>& tokens = docs_[static_cast<size_t>(doc)];
  const size_t len = tokens.size();
  const size_t longest = std::min(len, static_cast<size_t>(options_.max_n));
  uint64_t hashes[kMaxN + 1];
  uint64_t h = kHashStart;
  for (size_t n = 1; n <= longest; ++n) {
    h = ExtendHash(h, tokens[len - n]);
    hashes[n] = h;
  }
  for (size_t n = longest; n >= static_cast<size_t>(options_.min_n) && n >= 1; --n) {
    auto it = latest_.find(hashes[n]);
    if (it == latest_.end()) continue;
    const std::vector<int>& source = docs_[it->second >> 32];
    const size_t pos = static_cast<uint32_t>(it->second);
    if (!std::equal(source.begin() + static_cast<std::ptrdiff_t>(pos - n),
                    source.begin() + static_cast<std::ptrdiff_t>(pos), tokens.end() - n)) {
      continue;  // hash collision
    }
    const size_t stop = std::min(source.size(), pos + static_cast<size_t>(k));
    return std::vector<int>(source.begin() + static_cast<std::ptrdiff_t>(pos),
                            source.begin() + static_cast<std::ptrdiff_t>(stop));
  }
  return {};
}

}  // namespace rlpost
