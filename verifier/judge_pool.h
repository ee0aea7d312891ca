#pragma once
// JudgePool: the verifier's bounded concurrency. `max_concurrency` threads
// run jobs (items of a stream, or whole unary batches) from a FIFO queue
// that holds at most `max_queue` waiting jobs; Submit refuses more with
// kResourceExhausted, which the service edge turns into gRPC
// RESOURCE_EXHAUSTED so callers back off instead of piling up work.
//
// Thread-safety: Submit, queue_depth and in_flight may be called
// concurrently. Shutdown (also run by the destructor) stops accepting,
// runs the jobs already queued, and joins the threads, in that order; a job
// must not call Submit or Shutdown itself.

#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace rlpost {

class JudgePool {
 public:
  // Both at least 1 and 0 respectively (checked by the caller's flag
  // parsing; the constructor clamps).
  JudgePool(int max_concurrency, int max_queue);
  ~JudgePool();
  JudgePool(const JudgePool&) = delete;
  JudgePool& operator=(const JudgePool&) = delete;

  // Queues `job`. kResourceExhausted when `max_queue` jobs already wait and
  // every thread is busy; kFailedPrecondition after Shutdown.
  absl::Status Submit(std::function<void()> job);
  void Shutdown();

  int max_concurrency() const { return max_concurrency_; }
  int max_queue() const { return max_queue_; }
  // Jobs waiting for a thread / being run now.
  int64_t queue_depth() const;
  int64_t in_flight() const;

 private:
  void Work();

  const int max_concurrency_;
  const int max_queue_;
  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  int64_t running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace rlpost
