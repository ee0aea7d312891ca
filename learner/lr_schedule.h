#pragma once
// Learning-rate schedules: linear warmup, then constant or cosine decay to a
// floor. Plain C++; the learner calls it once per optimizer step.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

namespace rlpost {

struct LrSchedule {
  double base = 1e-3;
  int64_t warmup_steps = 0;  // linear from base/warmup_steps up to base
  int64_t total_steps = 1;   // cosine reaches the floor here
  bool cosine = false;       // false: constant after warmup
  double min_ratio = 0.0;    // cosine floor as a fraction of base
};

// Learning rate of optimizer step `step` (0-based).
inline double ScheduledLearningRate(const LrSchedule& s, int64_t step) {
  if (s.warmup_steps > 0 && step < s.warmup_steps) {
    return s.base * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  }
  if (!s.cosine) return s.base;
  const double span = static_cast<double>(std::max<int64_t>(s.total_steps - s.warmup_steps, 1));
  const double progress =
      std::min(1.0, static_cast<double>(step - s.warmup_steps) / span);
  const double floor = s.base * s.min_ratio;
  return floor + 0.5 * (s.base - floor) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace rlpost
