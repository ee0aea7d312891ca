#include "verifier/result_cache.h"

namespace rlpost {

namespace {

// Two independent 64-bit hashes of length-prefixed fields (FNV-1a and a
// multiply-xorshift mix), so distinct tasks collide with probability ~2^-128
// and field boundaries cannot shift ("ab"+"c" differs from "a"+"bc").
class Digest {
 public:
  void Add(std::string_view field) {
    AddLength(field.size());
    for (unsigned char c : field) Byte(c);
  }
  void AddNumber(double value) { Add(std::to_string(value)); }
  ResultCacheKey Finish() const { return {fnv_, Mix(mix_ ^ length_)}; }

 private:
  void AddLength(uint64_t n) {
    for (int i = 0; i < 8; ++i) Byte(static_cast<unsigned char>(n >> (8 * i)));
  }
  void Byte(unsigned char c) {
    fnv_ = (fnv_ ^ c) * 0x100000001b3ULL;
    mix_ = Mix(mix_ + c + 0x9e3779b97f4a7c15ULL);
    ++length_;
  }
  static uint64_t Mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }
  uint64_t fnv_ = 0xcbf29ce484222325ULL;
  uint64_t mix_ = 0;
  uint64_t length_ = 0;
};

}  // namespace

ResultCacheKey ResultCache::KeyOf(const v1::VerifyItem& item, std::string_view kind,
                                  std::string_view version) {
  Digest d;
  d.Add(kind);
  d.Add(version);
  d.Add(item.mode());
  d.Add(item.reference());
  d.Add(item.response());
  const v1::CodeItem& code = item.code();
  d.Add(code.language());
  d.Add(code.code());
  d.AddNumber(code.tests_size());
  for (const v1::CodeTest& t : code.tests()) {
    d.Add(t.stdin());
    d.Add(t.expected_stdout());
  }
  d.Add(code.compare());
  d.Add(code.test_code());
  d.Add(code.entry_point());
  d.AddNumber(code.limits().time_limit_s());
  d.AddNumber(code.limits().memory_limit_mb());
  d.AddNumber(static_cast<double>(code.limits().output_limit_bytes()));
  d.AddNumber(code.limits().max_processes());
  return d.Finish();
}

std::optional<v1::Verdict> ResultCache::Lookup(const ResultCacheKey& key) {
  if (capacity_ == 0) return std::nullopt;
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++misses_;
    return std::nullopt;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->second;
}

void ResultCache::Insert(const ResultCacheKey& key, const v1::Verdict& verdict) {
  if (capacity_ == 0) return;
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it != index_.end()) {
    it->second->second = verdict;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  if (lru_.size() >= capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  lru_.emplace_front(key, verdict);
  index_[key] = lru_.begin();
}

size_t ResultCache::size() const {
  absl::MutexLock lock(&mu_);
  return lru_.size();
}

int64_t ResultCache::hits() const {
  absl::MutexLock lock(&mu_);
  return hits_;
}

int64_t ResultCache::misses() const {
  absl::MutexLock lock(&mu_);
  return misses_;
}

}  // namespace rlpost
