#pragma once
// Lets a run end promptly on shutdown: every outgoing RPC of the run registers
// its context here, and CancelAll() cancels the ones in flight and refuses new
// ones. Retry back-off sleeps wait here too, so they end early as well.
//
// Thread-safe: Call() and Sleep() run on any thread, CancelAll() from any other.

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace rlpost {

class RpcCanceller {
 public:
  RpcCanceller() = default;
  RpcCanceller(const RpcCanceller&) = delete;
  RpcCanceller& operator=(const RpcCanceller&) = delete;

  // Runs `call` with a fresh context whose deadline is `timeout` from now. The
  // call is cancelled (status CANCELLED) if CancelAll() runs meanwhile, and is
  // not started at all once CancelAll() has run.
  grpc::Status Call(std::chrono::milliseconds timeout,
                    const std::function<grpc::Status(grpc::ClientContext*)>& call);

  // Cancels every call in flight and every later one. Idempotent.
  void CancelAll();
  bool cancelled() const;

  // Sleeps `duration`, or less if CancelAll() runs meanwhile.
  void Sleep(std::chrono::milliseconds duration);

 private:
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::set<grpc::ClientContext*> in_flight_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rlpost
