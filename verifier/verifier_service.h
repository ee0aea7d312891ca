#pragma once
// VerifierServiceImpl: the gRPC front end of rlpost-verifier. It judges items
// with the checker named by their kind ("math"; "code" once the code judge is
// built) and answers with one verdict per item.
//
// - Verify (unary): a batch judged in request order under one deadline;
//   items not reached in time get VERDICT_STATUS_TIMEOUT instead of failing
//   the batch, so a slow batch never hangs a training step.
// - VerifyStream (bidirectional): items are judged concurrently, each under
//   its own deadline, and verdicts are sent as they finish.
//
// Both go through one JudgePool (--max-concurrency threads, --max-queue
// waiting jobs; a unary batch is one job, a stream item is one job). A full
// queue is RESOURCE_EXHAUSTED. Verdicts of deterministic outcomes are kept
// in a ResultCache keyed by (kind, task, response, checker version).
//
// Thread-safety: every RPC may run concurrently with every other (the
// synchronous gRPC server calls them from its thread pool). Mutable state is
// the pool, the cache and the metrics, each internally synchronised, and an
// atomic counter; the options are fixed at construction. Destroy the service
// only after the gRPC server that serves it has shut down.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "rlpost/v1/verifier.grpc.pb.h"
#include "verifier/code_items.h"
#include "verifier/judge_pool.h"
#include "verifier/math/math_checker.h"
#include "verifier/math/math_worker_pool.h"
#include "verifier/result_cache.h"
#include "verifier/verifier_metrics.h"

namespace rlpost {

// The version reported by GetInfo and VerifyResponse: the math checker's
// version (what the controller's lineage records). Each verdict carries the
// version of the checker that produced it.
inline constexpr const char* kVerifierVersion = kMathVerifierVersion;

class VerifierServiceImpl final : public v1::VerifierService::Service {
 public:
  struct Options {
    // Deadline for batches (and stream items) that set none.
    absl::Duration default_deadline = absl::Milliseconds(5000);
    MathCheckOptions math;
    // The time source for deadlines; tests inject a fake clock. For a unary
    // batch it is read once when the batch arrives and once before each
    // item; for a stream item once on arrival and once before judging. Must
    // be callable from several threads at once. (Latency metrics use the
    // real clock.)
    std::function<absl::Time()> now = [] { return absl::Now(); };
    // Judge threads and the number of jobs that may wait for one.
    int max_concurrency = 2;
    int max_queue = 1024;
    // Verdicts kept in the result cache; 0 disables it.
    size_t cache_capacity = 65536;
    // When set, math checks run in these forked workers with the item's
    // remaining deadline as a hard limit (a check past it is killed and the
    // item gets `timeout`); otherwise in-process, bounded by the checker's
    // size budgets.
    std::shared_ptr<MathWorkerPool> math_workers;
    // The judge of kind "code"; null when there is none, and then code
    // items get an `error` verdict carrying `code_unavailable`.
    std::shared_ptr<const CodeItemJudge> code;
    std::string code_unavailable = "code verifier not built";
    // Test seam: called on the judge thread before an item is judged (after
    // its deadline check and cache lookup).
    std::function<void(const v1::VerifyItem&)> before_judge;
  };

  VerifierServiceImpl() : VerifierServiceImpl(Options()) {}
  explicit VerifierServiceImpl(Options options);
  ~VerifierServiceImpl() override;

  grpc::Status Verify(grpc::ServerContext* context, const v1::VerifyRequest* request,
                      v1::VerifyResponse* response) override;
  grpc::Status VerifyStream(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::Verdict, v1::VerifyItem>* stream) override;
  grpc::Status GetInfo(grpc::ServerContext* context, const v1::GetInfoRequest* request,
                       v1::VerifierInfo* info) override;

  // The core of Verify without the gRPC edge, run on the calling thread.
  // `cancelled` is polled before each item (the client gave up or its own
  // deadline passed); items after it get TIMEOUT too. Fails only for a
  // malformed request (negative deadline_ms), with kInvalidArgument.
  absl::Status VerifyBatch(const v1::VerifyRequest& request, v1::VerifyResponse* response,
                           const std::function<bool()>& cancelled);

  // Items that got a checker's verdict since start, from the checker or the
  // cache (timeouts, unknown kinds and malformed items are not counted).
  int64_t items_verified() const { return items_verified_.load(std::memory_order_relaxed); }

  // The Prometheus text of the metrics (served by --metrics-listen).
  std::string RenderMetrics() const;
  const VerifierMetrics& metrics() const { return metrics_; }
  const ResultCache& cache() const { return cache_; }

 private:
  // Judges one item whose deadline is `deadline` (on the options' clock);
  // `arrival` is on the real clock, for latency. Never fails: problems are
  // verdicts.
  v1::Verdict JudgeItem(const v1::VerifyItem& item, absl::Time deadline, absl::Time arrival,
                        const std::function<bool()>& cancelled);
  void JudgeMath(const v1::VerifyItem& item, absl::Time deadline, v1::Verdict* verdict) const;
  MathVerdict CheckMath(const std::string& response, const std::string& reference,
                        absl::Time deadline) const;
  void Finish(const std::string& kind_label, absl::Time arrival, v1::Verdict* verdict);

  const Options options_;
  JudgePool pool_;
  ResultCache cache_;
  VerifierMetrics metrics_;
  std::atomic<int64_t> items_verified_{0};
};

}  // namespace rlpost
