#pragma once
// Helpers shared by the files that implement TrainingRun (run.cc,
// run_sampling.cc, run_async.cc, run_state.cc, run_membership.cc).

#include <chrono>

namespace rlpost::run_internal {

using Clock = std::chrono::steady_clock;

inline double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace rlpost::run_internal
