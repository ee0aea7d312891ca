#pragma once
// Retries with exponential backoff for calls to other processes.

#include <chrono>
#include <functional>
#include <string>

#include "absl/status/status.h"

namespace rlpost {

struct RetryPolicy {
  int max_attempts = 8;
  std::chrono::milliseconds initial_backoff{100};
  double multiplier = 2.0;
  std::chrono::milliseconds max_backoff{5000};
};

// Sleeps between attempts. Tests replace it to run without waiting.
using SleepFn = std::function<void(std::chrono::milliseconds)>;
SleepFn RealSleep();

// Calls `attempt` until it returns OK or a status that is not worth retrying
// (only kUnavailable and kDeadlineExceeded are retried), at most
// policy.max_attempts times. The final error names `what` (e.g. the address)
// and the number of attempts.
absl::Status RetryWithBackoff(const std::function<absl::Status()>& attempt,
                              const RetryPolicy& policy, const std::string& what,
                              const SleepFn& sleep = RealSleep());

}  // namespace rlpost
