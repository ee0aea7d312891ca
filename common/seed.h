#pragma once
// SplitMix64: the one mixing step behind every derived seed and hash of the
// run (bijective, well mixed, cheap). Changing it changes every seeded run.

#include <cstdint>

namespace rlpost {

inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace rlpost
