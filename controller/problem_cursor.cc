#include "controller/problem_cursor.h"

#include <numeric>

namespace rlpost {
namespace {

// SplitMix64: a bijective, well-mixed step.
uint64_t SplitMix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t DeriveSeed(uint64_t base, SeedTag tag, std::initializer_list<uint64_t> parts) {
  uint64_t h = SplitMix(base ^ SplitMix(static_cast<uint64_t>(tag)));
  for (uint64_t p : parts) h = SplitMix(h ^ SplitMix(p + 0x632BE59BD9B4E019ull));
  return h;
}

ProblemCursor::ProblemCursor(const std::vector<Problem>* problems, uint64_t seed)
    : problems_(problems), seed_(seed) {
  order_.resize(problems_->size());
  Shuffle();
}

void ProblemCursor::Shuffle() {
  std::iota(order_.begin(), order_.end(), size_t{0});
  // Fisher-Yates with a SplitMix stream (portable, unlike std::shuffle).
  uint64_t state = SplitMix(seed_ ^ SplitMix(epoch_ + 1));
  for (size_t i = order_.size(); i > 1; --i) {
    state = SplitMix(state);
    size_t j = static_cast<size_t>(state % i);
    std::swap(order_[i - 1], order_[j]);
  }
  next_ = 0;
}

std::vector<const Problem*> ProblemCursor::Take(int64_t count) {
  std::vector<const Problem*> out;
  if (order_.empty()) return out;
  for (int64_t i = 0; i < count; ++i) {
    if (next_ == order_.size()) {
      ++epoch_;
      Shuffle();
    }
    out.push_back(&(*problems_)[order_[next_++]]);
  }
  return out;
}

}  // namespace rlpost
