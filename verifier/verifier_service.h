#pragma once
// VerifierServiceImpl: the gRPC front end of rlpost-verifier. It judges each
// item of a Verify batch with the checker named by the item's kind (only
// "math" for now) and answers with one verdict per item, in request order.
// The batch shares one deadline; items not reached in time get
// VERDICT_STATUS_TIMEOUT instead of failing the batch, so a slow batch never
// hangs a training step.
//
// Thread-safety: Verify and GetInfo may run concurrently (the synchronous
// gRPC server calls them from its thread pool). The only mutable state is an
// atomic counter; the options are fixed at construction.

#include <atomic>
#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "rlpost/v1/verifier.grpc.pb.h"
#include "verifier/math/math_checker.h"

namespace rlpost {

// The version reported by GetInfo and in every verdict. While "math" is the
// only kind, it is the math checker's version (what lineage needs).
inline constexpr const char* kVerifierVersion = kMathVerifierVersion;

class VerifierServiceImpl final : public v1::VerifierService::Service {
 public:
  struct Options {
    // Batch deadline for requests with deadline_ms == 0.
    absl::Duration default_deadline = absl::Milliseconds(5000);
    MathCheckOptions math;
    // The time source for batch deadlines; tests inject a fake clock. Read
    // once when a batch starts and once before each item. Must be callable
    // from several threads at once.
    std::function<absl::Time()> now = [] { return absl::Now(); };
  };

  VerifierServiceImpl() : VerifierServiceImpl(Options()) {}
  explicit VerifierServiceImpl(Options options);

  grpc::Status Verify(grpc::ServerContext* context, const v1::VerifyRequest* request,
                      v1::VerifyResponse* response) override;
  grpc::Status GetInfo(grpc::ServerContext* context, const v1::GetInfoRequest* request,
                       v1::VerifierInfo* info) override;

  // The core of Verify without the gRPC edge. `cancelled` is polled before
  // each item (the client gave up or its own deadline passed); items after
  // it get TIMEOUT too. Fails only for a malformed request (negative
  // deadline_ms), with kInvalidArgument.
  absl::Status VerifyBatch(const v1::VerifyRequest& request, v1::VerifyResponse* response,
                           const std::function<bool()>& cancelled);

  // Items a checker has judged since start (timeouts and unknown kinds are
  // not counted).
  int64_t items_verified() const { return items_verified_.load(std::memory_order_relaxed); }

 private:
  void JudgeMath(const v1::VerifyItem& item, v1::Verdict* verdict) const;

  const Options options_;
  std::atomic<int64_t> items_verified_{0};
};

}  // namespace rlpost
