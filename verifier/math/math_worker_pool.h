#pragma once
// MathWorkerPool: runs CheckMathAnswer in forked worker processes so that a
// check can be abandoned at a hard deadline. The in-process checker is
// bounded by size budgets (see docs/verifier.md), but GiNaC cannot be
// interrupted by a signal or a watchdog thread; a process can. A worker that
// misses its deadline is SIGKILLed and replaced, and the check's verdict is
// kError with reason "deadline exceeded".
//
// Design: the workers are forked when the pool is created (and when one is
// replaced); each talks to the pool over its own Unix socket pair with
// length-prefixed frames (request: response tail, reference, options;
// reply: the verdict). Workers die with the pool's process
// (PR_SET_PDEATHSIG) and when the pool is destroyed.
//
// Thread safety: Check may be called from any number of threads at once;
// each call takes an idle worker (waiting, within its deadline, for one to
// become free). The destructor must not run concurrently with Check: it
// waits for checks in flight, then kills and reaps every worker.

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "verifier/math/math_checker.h"

namespace rlpost {

class MathWorkerPool {
 public:
  // Forks `workers` processes (1..256). kInvalidArgument for a bad count,
  // kUnavailable when fork or socketpair fails (retry later).
  static absl::StatusOr<std::unique_ptr<MathWorkerPool>> Create(int workers);

  MathWorkerPool(const MathWorkerPool&) = delete;
  MathWorkerPool& operator=(const MathWorkerPool&) = delete;
  ~MathWorkerPool();

  // CheckMathAnswer(response, reference, options) in a worker. `deadline`
  // covers waiting for a free worker and the check itself; past it the
  // verdict is kError "deadline exceeded" (and a busy worker is replaced).
  // A worker that dies mid-check gives kError "checker process died".
  // Errors: kInvalidArgument for a non-positive deadline; kUnavailable when
  // no worker could be (re)started.
  absl::StatusOr<MathVerdict> Check(const std::string& response, const std::string& reference,
                                    const MathCheckOptions& options, absl::Duration deadline);

  // Number of workers killed and replaced so far (deadlines and crashes).
  int64_t workers_replaced() const;
  // Workers alive now (idle or busy).
  int live_workers() const;

 private:
  struct Worker {
    pid_t pid = -1;
    int fd = -1;  // the pool's end of the socket pair
  };

  MathWorkerPool() = default;

  static absl::StatusOr<Worker> SpawnWorker();
  static void KillWorker(const Worker& worker);
  bool HasIdleWorker() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::vector<Worker> idle_ ABSL_GUARDED_BY(mu_);
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t replaced_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rlpost
