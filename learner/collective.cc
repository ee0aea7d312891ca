#include "learner/collective.h"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef RLPOST_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <string>
#include <tuple>

#include "absl/strings/str_cat.h"

namespace rlpost {
namespace {

// This host's address on the route to `host`: what the other ranks reach
// this one at (a pod's IP in Kubernetes, 127.0.0.1 when the master is local).
// A UDP "connect" sends nothing; it only picks the route. Empty when `host`
// does not resolve.
std::string LocalAddressToward(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return "";
  std::string out;
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd >= 0 && connect(fd, found->ai_addr, found->ai_addrlen) == 0) {
    sockaddr_in local{};
    socklen_t len = sizeof(local);
    char text[INET_ADDRSTRLEN] = {0};
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0 &&
        inet_ntop(AF_INET, &local.sin_addr, text, sizeof(text)) != nullptr) {
      out = text;
    }
  }
  if (fd >= 0) close(fd);
  freeaddrinfo(found);
  return out;
}

// The Gloo device: on $GLOO_SOCKET_IFNAME when set (as in PyTorch), else on
// the address this host uses to reach the master.
std::shared_ptr<gloo::transport::Device> GlooDevice(const std::string& master_addr,
                                                    int master_port) {
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifname != nullptr && *ifname != '\0') {
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  }
  const std::string local = LocalAddressToward(master_addr, master_port);
  return c10d::ProcessGroupGloo::createDeviceForHostname(local.empty() ? master_addr : local);
}

}  // namespace

struct ProcessGroupHandle::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
#ifdef RLPOST_WITH_CUDA
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;  // null without GroupOptions::nccl_device
#endif
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
#ifndef RLPOST_WITH_CUDA
  if (options.nccl_device >= 0) {
    return absl::FailedPreconditionError(
        "learner.backend nccl needs the CUDA build (RLPOST_WITH_CUDA=ON); this binary has Gloo only: "
        "set learner.backend=gloo and learner.device=cpu");
  }
#endif
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
    pg_opts->devices.push_back(GlooDevice(options.master_addr, options.master_port));
    // Each group keeps its rendezvous keys under its own prefix.
    impl->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("gloo", impl->store), options.rank,
        options.world_size, pg_opts);
#ifdef RLPOST_WITH_CUDA
    if (options.nccl_device >= 0) {
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(options.nccl_device));
      auto nccl_opts = c10d::ProcessGroupNCCL::Options::create();
      nccl_opts->timeout = pg_opts->timeout;
      impl->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          c10::make_intrusive<c10d::PrefixStore>("nccl", impl->store), options.rank,
          options.world_size, nccl_opts);
    }
#endif
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
    // Tensors are flattened into buckets of one dtype and at most
    // kAllReduceBucketBytes (a larger tensor gets a bucket of its own); every
    // bucket's all-reduce is started before any is waited on, so transfers
    // overlap each other and the copies.
    struct Bucket {
      std::vector<size_t> members;
      int64_t bytes = 0;
      std::vector<at::Tensor> flat;
      c10::intrusive_ptr<c10d::Work> work;
    };
    std::vector<Bucket> buckets;
    // (dtype, device type, device index) -> bucket being filled
    using BucketKey = std::tuple<at::ScalarType, c10::DeviceType, c10::DeviceIndex>;
    std::map<BucketKey, size_t> open;
    for (size_t i = 0; i < tensors.size(); ++i) {
      const c10::Device device = tensors[i].device();
      const BucketKey type = {tensors[i].scalar_type(), device.type(), device.index()};
      const int64_t bytes = tensors[i].numel() * static_cast<int64_t>(tensors[i].element_size());
      auto it = open.find(type);
      if (it == open.end() || buckets[it->second].bytes + bytes > kAllReduceBucketBytes) {
        buckets.emplace_back();
        it = open.insert_or_assign(type, buckets.size() - 1).first;
      }
      buckets[it->second].members.push_back(i);
      buckets[it->second].bytes += bytes;
    }
    for (Bucket& b : buckets) {
      std::vector<at::Tensor> parts;
      for (size_t i : b.members) parts.push_back(tensors[i].reshape({-1}));
      // A lone contiguous tensor is reduced in place (its flat view shares
      // its storage); several are concatenated into one buffer.
      b.flat.push_back(parts.size() == 1 ? parts[0] : at::cat(parts));
#ifdef RLPOST_WITH_CUDA
      if (impl_->nccl && b.flat[0].is_cuda()) {
        b.work = impl_->nccl->allreduce(b.flat);
        continue;
      }
#endif
      b.work = impl_->pg->allreduce(b.flat);
    }
    for (Bucket& b : buckets) {
      b.work->wait();
      int64_t offset = 0;
      for (size_t i : b.members) {
        const int64_t n = tensors[i].numel();
        if (b.flat[0].data_ptr() != tensors[i].data_ptr()) {
          tensors[i].copy_(b.flat[0].narrow(0, offset, n).view_as(tensors[i]));
        }
        offset += n;
      }
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
