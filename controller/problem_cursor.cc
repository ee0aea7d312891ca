#include "controller/problem_cursor.h"

#include <algorithm>
#include <numeric>

#include "common/seed.h"

namespace rlpost {
uint64_t DeriveSeed(uint64_t base, SeedTag tag, std::initializer_list<uint64_t> parts) {
  uint64_t h = SplitMix64(base ^ SplitMix64(static_cast<uint64_t>(tag)));
  for (uint64_t p : parts) h = SplitMix64(h ^ SplitMix64(p + 0x632BE59BD9B4E019ull));
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
  uint64_t state = SplitMix64(seed_ ^ SplitMix64(epoch_ + 1));
  for (size_t i = order_.size(); i > 1; --i) {
    state = SplitMix64(state);
    size_t j = static_cast<size_t>(state % i);
    std::swap(order_[i - 1], order_[j]);
  }
  next_ = 0;
}

void ProblemCursor::Restore(const Position& position) {
  epoch_ = position.epoch;
  Shuffle();
  next_ = static_cast<size_t>(std::min<uint64_t>(position.next, order_.size()));
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
