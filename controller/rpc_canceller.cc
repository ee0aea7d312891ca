#include "controller/rpc_canceller.h"

#include "absl/time/time.h"

namespace rlpost {

grpc::Status RpcCanceller::Call(std::chrono::milliseconds timeout,
                                const std::function<grpc::Status(grpc::ClientContext*)>& call) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return grpc::Status(grpc::StatusCode::CANCELLED, "run cancelled");
    in_flight_.insert(&context);
  }
  grpc::Status status = call(&context);
  absl::MutexLock lock(&mu_);
  in_flight_.erase(&context);
  return status;
}

void RpcCanceller::CancelAll() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  for (grpc::ClientContext* context : in_flight_) context->TryCancel();
}

bool RpcCanceller::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

void RpcCanceller::Sleep(std::chrono::milliseconds duration) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&cancelled_), absl::FromChrono(duration));
}

}  // namespace rlpost
