#pragma once
// Seeded choices of the controller: per-purpose seeds derived from run.seed,
// and a shuffled, cycling cursor over a problem set. Same seed, same sequence
// on every machine (no implementation-defined distributions).

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "controller/arith_task.h"

namespace rlpost {

// Tags that keep the seeds of different purposes apart.
enum class SeedTag : uint64_t {
  kSftOrder = 1,
  kRlOrder = 2,
  kRlSampling = 3,
  kEvalSampling = 4,
};

// A well-mixed 64-bit seed for (base, tag, parts...).
uint64_t DeriveSeed(uint64_t base, SeedTag tag, std::initializer_list<uint64_t> parts = {});

// Hands out problems in a seeded random order; when every problem has been
// handed out it reshuffles (a fresh permutation per epoch) and goes on. Not
// thread-safe: owned by the run loop.
class ProblemCursor {
 public:
  // `problems` must outlive the cursor.
  ProblemCursor(const std::vector<Problem>* problems, uint64_t seed);

  // The next `count` problems (with repeats across epochs when count exceeds
  // the set). Empty when the set is empty.
  std::vector<const Problem*> Take(int64_t count);

  // Where the cursor stands (saved with checkpoints) and a jump back there:
  // the permutation is a function of (seed, epoch), so two numbers suffice.
  struct Position {
    uint64_t epoch = 0;
    uint64_t next = 0;
  };
  Position position() const { return {epoch_, next_}; }
  // `next` beyond the set's size is clamped to it.
  void Restore(const Position& position);

 private:
  void Shuffle();

  const std::vector<Problem>* problems_;
  uint64_t seed_;
  uint64_t epoch_ = 0;
  std::vector<size_t> order_;
  size_t next_ = 0;
};

}  // namespace rlpost
