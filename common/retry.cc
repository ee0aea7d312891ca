#include "common/retry.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"

namespace rlpost {

SleepFn RealSleep() {
  return [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
}

absl::Status RetryWithBackoff(const std::function<absl::Status()>& attempt,
                              const RetryPolicy& policy, const std::string& what,
                              const SleepFn& sleep) {
  std::chrono::milliseconds backoff = policy.initial_backoff;
  absl::Status last;
  int attempts = std::max(1, policy.max_attempts);
  for (int i = 0; i < attempts; ++i) {
    last = attempt();
    if (last.ok()) return last;
    bool retryable = last.code() == absl::StatusCode::kUnavailable ||
                     last.code() == absl::StatusCode::kDeadlineExceeded;
    if (!retryable) return last;
    if (i + 1 < attempts) {
      sleep(backoff);
      backoff = std::min(policy.max_backoff,
                         std::chrono::milliseconds(static_cast<int64_t>(
                             static_cast<double>(backoff.count()) * policy.multiplier)));
    }
  }
  return absl::Status(last.code(),
                      absl::StrCat(what, " unreachable after ", attempts,
                                   " attempts: ", last.message()));
}

}  // namespace rlpost
