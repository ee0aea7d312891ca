#include "verifier/judge_pool.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace rlpost {

JudgePool::JudgePool(int max_concurrency, int max_queue)
    : max_concurrency_(std::max(1, max_concurrency)), max_queue_(std::max(0, max_queue)) {
  threads_.reserve(max_concurrency_);
  for (int i = 0; i < max_concurrency_; ++i) threads_.emplace_back([this] { Work(); });
}

JudgePool::~JudgePool() { Shutdown(); }

absl::Status JudgePool::Submit(std::function<void()> job) {
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    return absl::FailedPreconditionError("the verifier is shutting down; retry on another one");
  }
  // Idle threads take jobs at once, so only jobs beyond them really wait.
  const int64_t waiting_after = static_cast<int64_t>(queue_.size()) + 1 + running_ -
                                max_concurrency_;
  if (waiting_after > max_queue_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "verifier queue is full: ", running_, " items being judged and ", queue_.size(),
        " waiting (limit --max-queue=", max_queue_,
        "); retry later, send fewer items at once, or raise --max-queue / --max-concurrency"));
  }
  queue_.push_back(std::move(job));
  return absl::OkStatus();
}

void JudgePool::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

int64_t JudgePool::queue_depth() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(queue_.size());
}

int64_t JudgePool::in_flight() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

void JudgePool::Work() {
  while (true) {
    std::function<void()> job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](JudgePool* p) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return p->stopping_ || !p->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // stopping and drained
      job = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    job();
    absl::MutexLock lock(&mu_);
    --running_;
  }
}

}  // namespace rlpost
