#include "learner/collective.h"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>

#include "absl/strings/str_cat.h"

namespace rlpost {

struct ProcessGroupHandle::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  int rank = 0;
  int world = 1;
};

ProcessGroupHandle::ProcessGroupHandle(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProcessGroupHandle::~ProcessGroupHandle() = default;

absl::StatusOr<std::unique_ptr<ProcessGroupHandle>> ProcessGroupHandle::Connect(
    const GroupOptions& options) {
  if (options.world_size < 1 || options.rank < 0 || options.rank >= options.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", options.rank,
                                                   " is outside world size ",
                                                   options.world_size));
  }
  auto impl = std::make_unique<Impl>();
  impl->rank = options.rank;
  impl->world = options.world_size;
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(options.master_port);
    so.isServer = options.rank == 0;
    so.numWorkers = options.world_size;
    so.waitWorkers = false;
    so.timeout = std::chrono::milliseconds(int64_t{options.rendezvous_timeout_seconds} * 1000);
    impl->store = c10::make_intrusive<c10d::TCPStore>(options.master_addr, so);
    auto pg_opts = c10d::ProcessGroupGloo::Options::create();
    pg_opts->timeout = std::chrono::milliseconds(int64_t{options.timeout_seconds} * 1000);
    pg_opts->devices.push_back(
        c10d::ProcessGroupGloo::createDeviceForHostname(options.master_addr));
    impl->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, options.rank,
                                                           options.world_size, pg_opts);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(
        "learner rank ", options.rank, " of ", options.world_size,
        ": rendezvous at ", options.master_addr, ":", options.master_port,
        " could not complete (timeout ", options.rendezvous_timeout_seconds, " s): ", e.what()));
  }
  return std::unique_ptr<ProcessGroupHandle>(new ProcessGroupHandle(std::move(impl)));
}

int ProcessGroupHandle::rank() const { return impl_->rank; }
int ProcessGroupHandle::world_size() const { return impl_->world; }

absl::Status ProcessGroupHandle::AllReduceSum(std::vector<at::Tensor>& tensors) {
  if (tensors.empty()) return absl::OkStatus();
  try {
    // One flat buffer: a single collective per step.
    std::vector<at::Tensor> flat{at::cat(
        [&] {
          std::vector<at::Tensor> parts;
          for (auto& t : tensors) parts.push_back(t.reshape({-1}));
          return parts;
        }())};
    impl_->pg->allreduce(flat)->wait();
    int64_t offset = 0;
    for (auto& t : tensors) {
      int64_t n = t.numel();
      t.copy_(flat[0].narrow(0, offset, n).view_as(t));
      offset += n;
    }
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("gradient all-reduce failed: ", e.what()));
  }
  return absl::OkStatus();
}

absl::Status ProcessGroupHandle::BroadcastBytes(std::string* bytes) {
  try {
    std::vector<at::Tensor> size{at::zeros({1}, at::kLong)};
    if (impl_->rank == 0) size[0].fill_(static_cast<int64_t>(bytes->size()));
    impl_->pg->broadcast(size)->wait();
    int64_t n = size[0].item<int64_t>();
    std::vector<at::Tensor> data{at::zeros({std::max<int64_t>(n, 1)}, at::kByte)};
    if (impl_->rank == 0 && n > 0) std::memcpy(data[0].data_ptr(), bytes->data(), n);
    impl_->pg->broadcast(data)->wait();
    if (impl_->rank != 0) bytes->assign(static_cast<const char*>(data[0].data_ptr()), n);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("broadcast to learner ranks failed: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace rlpost
