#pragma once
// The learner's process group over torch c10d: TCPStore rendezvous, gradient
// all-reduce, and the command channel rank 0 uses to hand batches to the other
// ranks. Gloo carries CPU tensors and the command channel; in the CUDA build
// an NCCL group (GroupOptions::nccl_device) carries CUDA tensors. Not thread-safe: one caller at a time, and
// every rank must make the same sequence of collective calls.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace at {
class Tensor;
}

namespace rlpost {

struct GroupOptions {
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int timeout_seconds = 86400;  // idle ranks wait for the next batch this long
  int rendezvous_timeout_seconds = 120;  // all ranks must have joined by then
  // >= 0: also an NCCL group on this CUDA device, which reduces CUDA tensors
  // (the CUDA build only; Connect fails otherwise). -1: Gloo reduces all.
  int nccl_device = -1;
};

class ProcessGroupHandle {
 public:
  static absl::StatusOr<std::unique_ptr<ProcessGroupHandle>> Connect(const GroupOptions& options);
  ~ProcessGroupHandle();

  int rank() const;
  int world_size() const;

  // Sums the tensors across ranks in place, in buckets of at most this many
  // bytes per dtype and device.
  static constexpr int64_t kAllReduceBucketBytes = 25 << 20;
  // Sums the tensors across ranks in place; CUDA tensors over NCCL when the
  // group has it, everything else over Gloo.
  absl::Status AllReduceSum(std::vector<at::Tensor>& tensors);
  // Rank 0 sends `*bytes`; other ranks receive into it.
  absl::Status BroadcastBytes(std::string* bytes);

 private:
  struct Impl;
  explicit ProcessGroupHandle(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rlpost
