#include "controller/peer_clients.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_util.h"
#include "common/metrics_registry.h"
#include "common/seed.h"

namespace rlpost {
namespace {

// Items per VerifyRequest: large enough to amortise the call, small enough that
// one batch fits comfortably in the verifier's per-request deadline.
constexpr size_t kVerifyBatch = 256;

// Records the first error of a fan-out.
class FirstError {
 public:
  void Set(absl::Status status) {
    absl::MutexLock lock(&mu_);
    if (status_.ok()) status_ = std::move(status);
    failed_.store(true);
  }
  bool failed() const { return failed_.load(); }
  absl::Status Get() {
    absl::MutexLock lock(&mu_);
    return status_;
  }

 private:
  absl::Mutex mu_;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> failed_{false};
};

}  // namespace

PeerClients::PeerClients(const PeerAddresses& addresses, const PeerTimeouts& timeouts,
                         RpcCanceller* canceller)
    : timeouts_(timeouts), canceller_(canceller) {
  for (const std::string& address : addresses.rollouts) {
    rollouts_.push_back(Rollout{address, v1::RolloutService::NewStub(MakeChannel(address))});
  }
  verifier_address_ = addresses.verifier;
  verifiers_.push_back(
      Verifier{addresses.verifier, v1::VerifierService::NewStub(MakeChannel(addresses.verifier))});
  learner_address_ = addresses.learner;
  learner_ = v1::LearnerService::NewStub(MakeChannel(addresses.learner));
}

absl::Status PeerClients::Connect(const RetryPolicy& policy, const SleepFn& sleep,
                                  std::vector<v1::WorkerStatus>* workers,
                                  v1::LearnerInfo* learner_info) {
  retry_policy_ = policy;
  sleep_ = sleep;
  workers->clear();
  auto add = [workers](const std::string& address, const std::string& role, int64_t version) {
    v1::WorkerStatus w;
    w.set_address(address);
    w.set_role(role);
    w.set_weight_version(version);
    w.set_healthy(true);
    workers->push_back(w);
  };
  for (const Rollout& rollout : rollouts_) {
    v1::RolloutInfo info;
    absl::Status s = RetryWithBackoff(
        [&] {
          info.Clear();
          return FromGrpcStatus(canceller_->Call(timeouts_.connect,
                                                 [&](grpc::ClientContext* ctx) {
                                                   return rollout.stub->GetInfo(
                                                       ctx, v1::GetInfoRequest(), &info);
                                                 }),
                                "GetInfo");
        },
        policy, absl::StrCat("rollout ", rollout.address), sleep);
    if (!s.ok()) return s;
    add(rollout.address, "rollout", info.weight_version());
  }
  v1::VerifierInfo verifier_info;
  absl::Status s = RetryWithBackoff(
      [&] {
        return FromGrpcStatus(canceller_->Call(timeouts_.connect,
                                               [&](grpc::ClientContext* ctx) {
                                                 return verifiers_[0].stub->GetInfo(
                                                     ctx, v1::GetInfoRequest(), &verifier_info);
                                               }),
                              "GetInfo");
      },
      policy, absl::StrCat("verifier ", verifier_address_), sleep);
  if (!s.ok()) return s;
  add(verifier_address_, "verifier", 0);
  s = RetryWithBackoff(
      [&] {
        return FromGrpcStatus(canceller_->Call(timeouts_.connect,
                                               [&](grpc::ClientContext* ctx) {
                                                 return learner_->GetInfo(
                                                     ctx, v1::GetInfoRequest(), learner_info);
                                               }),
                              "GetInfo");
      },
      policy, absl::StrCat("learner ", learner_address_), sleep);
  if (!s.ok()) return s;
  add(learner_address_, "learner", learner_info->weight_version());
  return absl::OkStatus();
}

absl::StatusOr<v1::TrainResult> PeerClients::Train(const v1::TrainBatch& batch) {
  v1::TrainResult result;
  grpc::Status s = canceller_->Call(timeouts_.rpc, [&](grpc::ClientContext* ctx) {
    return learner_->Train(ctx, batch, &result);
  });
  if (!s.ok()) return FromGrpcStatus(s, absl::StrCat("learner ", learner_address_, " Train"));
  return result;
}

absl::StatusOr<v1::SaveCheckpointResponse> PeerClients::SaveCheckpoint(
    const std::string& directory, int keep_last, const std::string& client_state) {
  v1::SaveCheckpointRequest request;
  request.set_directory(directory);
  request.set_keep_last(keep_last);
  request.set_client_state(client_state);
  v1::SaveCheckpointResponse response;
  grpc::Status s = canceller_->Call(timeouts_.rpc, [&](grpc::ClientContext* ctx) {
    return learner_->SaveCheckpoint(ctx, request, &response);
  });
  if (!s.ok()) {
    return FromGrpcStatus(s, absl::StrCat("learner ", learner_address_, " SaveCheckpoint"));
  }
  return response;
}

absl::StatusOr<v1::LearnerInfo> PeerClients::Restore(const std::string& directory) {
  v1::RestoreRequest request;
  request.set_directory(directory);
  v1::LearnerInfo info;
  grpc::Status s = canceller_->Call(timeouts_.rpc, [&](grpc::ClientContext* ctx) {
    return learner_->Restore(ctx, request, &info);
  });
  if (!s.ok()) return FromGrpcStatus(s, absl::StrCat("learner ", learner_address_, " Restore"));
  return info;
}

absl::StatusOr<WeightSet> PeerClients::FetchWeights(bool bf16, int64_t version) {
  WeightSet weights;
  v1::GetWeightsRequest request;
  request.set_version(version);  // 0: latest
  request.set_dtype(bf16 ? v1::DTYPE_BFLOAT16 : v1::DTYPE_FLOAT32);
  grpc::Status s = canceller_->Call(timeouts_.rpc, [&](grpc::ClientContext* ctx) {
    std::unique_ptr<grpc::ClientReader<v1::WeightChunk>> reader =
        learner_->GetWeights(ctx, request);
    v1::WeightChunk chunk;
    while (reader->Read(&chunk)) {
      weights.bytes += static_cast<int64_t>(chunk.data().size());
      weights.chunks.push_back(std::move(chunk));
      chunk.Clear();
    }
    return reader->Finish();
  });
  const std::string who = absl::StrCat("learner ", learner_address_);
  if (!s.ok()) return FromGrpcStatus(s, absl::StrCat(who, " GetWeights"));
  if (weights.chunks.empty()) {
    return absl::DataLossError(absl::StrCat(who, " GetWeights sent no weight chunks"));
  }
  weights.version = weights.chunks.front().version();
  for (const v1::WeightChunk& chunk : weights.chunks) {
    if (chunk.version() != weights.version) {
      return absl::DataLossError(absl::StrCat(who, " GetWeights mixed versions ",
                                              weights.version, " and ", chunk.version()));
    }
  }
  return weights;
}

absl::Status PeerClients::PushWeightsTo(const Rollout& rollout, const WeightSet& weights) {
  v1::UpdateWeightsResponse response;
  grpc::Status s = canceller_->Call(timeouts_.rpc, [&](grpc::ClientContext* ctx) {
    std::unique_ptr<grpc::ClientWriter<v1::WeightChunk>> writer =
        rollout.stub->UpdateWeights(ctx, &response);
    for (const v1::WeightChunk& chunk : weights.chunks) {
      if (!writer->Write(chunk)) break;  // the server ended the call; Finish says why
    }
    writer->WritesDone();
    return writer->Finish();
  });
  const std::string who = absl::StrCat("rollout ", rollout.address);
  if (!s.ok()) return FromGrpcStatus(s, absl::StrCat(who, " UpdateWeights"));
  if (response.weight_version() != weights.version) {
    return absl::DataLossError(absl::StrCat(who, " reports version ", response.weight_version(),
                                            " after UpdateWeights to version ", weights.version));
  }
  return absl::OkStatus();
}

bool IsWorkerFailure(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kCancelled:
      return true;
    default:
      return false;
  }
}

void PeerClients::MarkLost(size_t w, const absl::Status& why) {
  std::lock_guard<std::mutex> lock(lost_mu_);
  if (rollouts_[w].lost) return;
  rollouts_[w].lost = true;
  const std::string line = absl::StrCat(rollouts_[w].address, ": ", why.message());
  newly_lost_.push_back(line);
  lost_reasons_.push_back(line);
}

bool PeerClients::IsLost(size_t w) const {
  std::lock_guard<std::mutex> lock(lost_mu_);
  return rollouts_[w].lost;
}

std::vector<std::string> PeerClients::TakeNewlyLost() {
  std::lock_guard<std::mutex> lock(lost_mu_);
  std::vector<std::string> out;
  out.swap(newly_lost_);
  return out;
}

int PeerClients::live_rollout_count() const {
  std::lock_guard<std::mutex> lock(lost_mu_);
  int n = 0;
  for (const Rollout& r : rollouts_) n += r.lost ? 0 : 1;
  return n;
}

absl::StatusOr<int> PeerClients::AddRollout(const std::string& address) {
  std::lock_guard<std::mutex> lock(lost_mu_);
  for (size_t i = 0; i < rollouts_.size(); ++i) {
    if (rollouts_[i].address != address) continue;
    // Back after being lost, or registering again while still counted as
    // serving: a restarted process whose loss nobody noticed yet. Either way
    // it gets the weights again before serving.
    rollouts_[i].lost = false;
    return static_cast<int>(i);
  }
  Rollout r;
  r.address = address;
  r.stub = v1::RolloutService::NewStub(MakeChannel(address));
  rollouts_.push_back(std::move(r));
  return static_cast<int>(rollouts_.size()) - 1;
}

absl::Status PeerClients::DrainRollout(const std::string& address) {
  std::lock_guard<std::mutex> lock(lost_mu_);
  int live = 0;
  Rollout* target = nullptr;
  for (Rollout& r : rollouts_) {
    if (r.lost) continue;
    ++live;
    if (r.address == address) target = &r;
  }
  if (target == nullptr) {
    return absl::NotFoundError(absl::StrCat("rollout ", address, " is not serving"));
  }
  if (live == 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("rollout ", address, " is the last serving worker"));
  }
  target->lost = true;
  return absl::OkStatus();
}

absl::Status PeerClients::PushWeightsToWorker(int index, const WeightSet& weights) {
  absl::Status s = PushWeightsTo(rollouts_[static_cast<size_t>(index)], weights);
  if (!s.ok()) MarkLost(static_cast<size_t>(index), s);
  return s;
}

absl::Status PeerClients::PushWeights(const WeightSet& weights) {
  std::vector<absl::Status> results(rollouts_.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < rollouts_.size(); ++i) {
    if (IsLost(i)) continue;
    threads.emplace_back([&, i] { results[i] = PushWeightsTo(rollouts_[i], weights); });
  }
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].ok()) continue;
    if (!IsWorkerFailure(results[i]) || canceller_->cancelled()) return results[i];
    MarkLost(i, results[i]);
  }
  if (live_rollout_count() == 0) {
    std::lock_guard<std::mutex> lock(lost_mu_);
    return absl::UnavailableError(
        absl::StrCat("every rollout worker is lost: ", absl::StrJoin(lost_reasons_, "; ")));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::Completion>> PeerClients::Generate(
    const Rollout& rollout, const v1::GenerateRequest& request,
    std::chrono::milliseconds deadline, std::vector<v1::Completion>* partial,
    const std::function<void(grpc::ClientContext*, bool)>& track) {
  std::vector<v1::Completion> completions;
  const std::chrono::milliseconds timeout =
      deadline.count() > 0 ? std::min(deadline, timeouts_.rpc) : timeouts_.rpc;
  grpc::Status s = canceller_->Call(timeout, [&](grpc::ClientContext* ctx) {
    if (track) track(ctx, true);
    std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader =
        rollout.stub->Generate(ctx, request);
    v1::GenerateResponse response;
    while (reader->Read(&response)) {
      completions.push_back(std::move(*response.mutable_completion()));
      response.Clear();
    }
    grpc::Status finished = reader->Finish();
    if (track) track(ctx, false);  // before the context goes away
    return finished;
  });
  const std::string who = absl::StrCat("rollout ", rollout.address);
  if (!s.ok()) {
    if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && partial != nullptr) {
      *partial = std::move(completions);
    }
    return FromGrpcStatus(s, absl::StrCat(who, " Generate"));
  }
  const size_t n = static_cast<size_t>(std::max(1, request.n()));
  if (completions.size() != n) {
    return absl::DataLossError(absl::StrCat(who, " returned ", completions.size(),
                                            " completions for prompt '", request.prompt_id(),
                                            "', expected ", n));
  }
  std::sort(completions.begin(), completions.end(),
            [](const v1::Completion& a, const v1::Completion& b) {
              return a.sample_index() < b.sample_index();
            });
  for (size_t i = 0; i < n; ++i) {
    const v1::Completion& c = completions[i];
    if (c.sample_index() != static_cast<int32_t>(i)) {
      return absl::DataLossError(absl::StrCat(who, " returned sample indices that are not 0..",
                                              n - 1, " for prompt '", request.prompt_id(), "'"));
    }
    if (c.logprobs_size() != c.token_ids_size()) {
      return absl::DataLossError(absl::StrCat(who, " returned ", c.token_ids_size(),
                                              " tokens but ", c.logprobs_size(),
                                              " logprobs for prompt '", request.prompt_id(), "'"));
    }
  }
  return completions;
}

absl::StatusOr<std::vector<std::vector<v1::Completion>>> PeerClients::GenerateAll(
    const std::vector<v1::GenerateRequest>& requests, int per_worker) {
  absl::StatusOr<std::vector<GroupResult>> groups =
      GenerateGroups(requests, per_worker, StragglerPolicy{});
  if (!groups.ok()) return groups.status();
  std::vector<std::vector<v1::Completion>> results;
  for (GroupResult& g : *groups) results.push_back(std::move(g.completions));
  return results;
}

absl::StatusOr<std::vector<PeerClients::GroupResult>> PeerClients::GenerateGroups(
    const std::vector<v1::GenerateRequest>& requests, int per_worker,
    const StragglerPolicy& policy) {
  std::vector<GroupResult> results(requests.size());
  if (requests.empty()) return results;
  if (rollouts_.empty()) return absl::FailedPreconditionError("no rollout workers");
  // A job asks for some members of group `group`: `slots` maps the job's
  // sample indices 0..n-1 to the group's.
  struct Job {
    size_t group;
    v1::GenerateRequest request;
    std::vector<int32_t> slots;
    bool retry = false;
  };
  std::vector<Job> jobs;
  std::vector<std::vector<std::optional<v1::Completion>>> members(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const int n = std::max(1, requests[i].n());
    members[i].resize(static_cast<size_t>(n));
    Job job{i, requests[i], {}, false};
    for (int j = 0; j < n; ++j) job.slots.push_back(j);
    jobs.push_back(std::move(job));
  }
  // One queue for every worker; a lost worker's jobs go back to it.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<size_t> pending;
  for (size_t i = 0; i < jobs.size(); ++i) pending.push_back(i);
  size_t in_flight = 0;
  absl::Status error;  // first fatal error
  // Long-tail cut: once `finish_after` groups are complete, the rest are
  // cancelled (in flight) or never started (queued).
  size_t complete = 0;
  bool cut = false;
  std::set<grpc::ClientContext*> running;  // contexts of the calls in flight
  auto group_complete = [&](size_t g) {
    for (const auto& m : members[g]) {
      if (!m) return false;
    }
    return true;
  };
  // No more lanes per worker than an even share of the jobs, so a few jobs
  // spread over every worker instead of filling the first one's lanes.
  const size_t live = static_cast<size_t>(std::max(1, live_rollout_count()));
  const size_t lanes = std::min(static_cast<size_t>(std::max(1, per_worker)),
                                (jobs.size() + live - 1) / live);
  std::vector<std::thread> threads;
  for (size_t w = 0; w < rollouts_.size(); ++w) {
    if (IsLost(w)) continue;
    for (size_t lane = 0; lane < lanes; ++lane) {
      threads.emplace_back([&, w] {
        while (true) {
          size_t i;
          v1::GenerateRequest request;
          {
            std::unique_lock<std::mutex> lock(mu);
            cv.wait(lock, [&] { return !error.ok() || !pending.empty() || in_flight == 0; });
            if (!error.ok() || pending.empty() || IsLost(w)) return;
            i = pending.front();
            pending.pop_front();
            request = jobs[i].request;
            ++in_flight;
            DefaultMetrics().Set("rlpost_controller_generate_queue_depth", {},
                                 static_cast<double>(pending.size()));
            DefaultMetrics().Set("rlpost_controller_generate_in_flight", {},
                                 static_cast<double>(in_flight));
          }
          std::vector<v1::Completion> partial;
          absl::StatusOr<std::vector<v1::Completion>> r = Generate(
              rollouts_[w], request, policy.group_deadline, &partial,
              [&](grpc::ClientContext* ctx, bool started) {
                std::lock_guard<std::mutex> lock(mu);
                if (!started) {
                  running.erase(ctx);
                  return;
                }
                if (cut) ctx->TryCancel();  // the cut came first
                running.insert(ctx);
              });
          std::lock_guard<std::mutex> lock(mu);
          --in_flight;
          Job& job = jobs[i];
          if (cut && !r.ok()) {
            // Cancelled by the long-tail cut: not a worker failure.
            results[job.group].cut = true;
            results[job.group].dropped = true;
            cv.notify_all();
            continue;
          }
          auto place = [&](std::vector<v1::Completion>& done) {
            for (v1::Completion& c : done) {
              const int32_t k = c.sample_index();
              if (k < 0 || k >= static_cast<int32_t>(job.slots.size())) continue;
              const int32_t slot = job.slots[static_cast<size_t>(k)];
              c.set_sample_index(slot);
              members[job.group][static_cast<size_t>(slot)] = std::move(c);
            }
          };
          const bool late = !r.ok() && r.status().code() == absl::StatusCode::kDeadlineExceeded &&
                            policy.group_deadline.count() > 0 && !canceller_->cancelled();
          if (r.ok()) {
            place(*r);
            if (policy.finish_after > 0 && !cut && group_complete(job.group) &&
                ++complete >= static_cast<size_t>(policy.finish_after)) {
              cut = true;
              for (size_t q : pending) {
                results[jobs[q].group].cut = true;
                results[jobs[q].group].dropped = true;
              }
              pending.clear();
              for (grpc::ClientContext* ctx : running) ctx->TryCancel();
            }
          } else if (late) {
            // A straggler: keep what finished; ask once more for the rest
            // under a new seed, or drop the group.
            place(partial);
            std::vector<int32_t> missing;
            for (size_t k = 0; k < members[job.group].size(); ++k) {
              if (!members[job.group][k]) missing.push_back(static_cast<int32_t>(k));
            }
            // A continued partial rollout cannot be asked for under a new
            // seed: its group is dropped instead.
            if (policy.resample && !job.retry && !missing.empty() &&
                job.request.resume().empty()) {
              Job again{job.group, job.request, missing, true};
              again.request.set_n(static_cast<int32_t>(missing.size()));
              again.request.mutable_params()->set_seed(
                  SplitMix64(job.request.params().seed() ^ 0x9E3779B97F4A7C15ull));
              results[job.group].resampled += static_cast<int>(missing.size());
              jobs.push_back(std::move(again));
              pending.push_back(jobs.size() - 1);
            } else {
              results[job.group].dropped = true;
            }
          } else if (IsWorkerFailure(r.status()) && !canceller_->cancelled()) {
            MarkLost(w, r.status());
            pending.push_front(i);
            if (live_rollout_count() == 0) {
              std::lock_guard<std::mutex> lost(lost_mu_);
              error = absl::UnavailableError(absl::StrCat(
                  "every rollout worker is lost: ", absl::StrJoin(lost_reasons_, "; ")));
            }
          } else if (error.ok()) {
            error = r.status();
          }
          cv.notify_all();
          if (!error.ok() || IsLost(w)) return;
        }
      });
    }
  }
  for (std::thread& t : threads) t.join();
  if (!error.ok()) return error;
  if (!pending.empty()) {
    std::lock_guard<std::mutex> lost(lost_mu_);
    return absl::UnavailableError(
        absl::StrCat("every rollout worker is lost: ", absl::StrJoin(lost_reasons_, "; ")));
  }
  for (size_t i = 0; i < results.size(); ++i) {
    if (cut && !results[i].dropped && !group_complete(i)) {
      results[i].cut = true;  // a straggler retry the cut never started
      results[i].dropped = true;
    }
    if (results[i].dropped) {
      results[i].completions.clear();
      continue;
    }
    for (auto& m : members[i]) {
      if (!m) return absl::InternalError("a group finished with a member missing");
      results[i].completions.push_back(std::move(*m));
    }
  }
  return results;
}

const PeerClients::Verifier& PeerClients::NextVerifier() {
  std::lock_guard<std::mutex> lock(lost_mu_);
  for (size_t tries = 0; tries < verifiers_.size(); ++tries) {
    const Verifier& v = verifiers_[next_verifier_++ % verifiers_.size()];
    if (!v.out) return v;
  }
  return verifiers_[0];  // none marked serving: the configured one
}

absl::StatusOr<int> PeerClients::AddVerifier(const std::string& address) {
  std::lock_guard<std::mutex> lock(lost_mu_);
  for (size_t i = 0; i < verifiers_.size(); ++i) {
    if (verifiers_[i].address == address) {
      verifiers_[i].out = false;
      return static_cast<int>(i);
    }
  }
  verifiers_.push_back(Verifier{address, v1::VerifierService::NewStub(MakeChannel(address))});
  return static_cast<int>(verifiers_.size()) - 1;
}

absl::Status PeerClients::DrainVerifier(const std::string& address) {
  std::lock_guard<std::mutex> lock(lost_mu_);
  int serving = 0;
  Verifier* target = nullptr;
  for (Verifier& v : verifiers_) {
    if (v.out) continue;
    ++serving;
    if (v.address == address) target = &v;
  }
  if (target == nullptr) {
    return absl::NotFoundError(absl::StrCat("verifier ", address, " is not serving"));
  }
  if (serving == 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("verifier ", address, " is the last one serving"));
  }
  target->out = true;
  return absl::OkStatus();
}

int PeerClients::live_verifier_count() const {
  std::lock_guard<std::mutex> lock(lost_mu_);
  int n = 0;
  for (const Verifier& v : verifiers_) n += v.out ? 0 : 1;
  return n;
}

absl::StatusOr<std::vector<v1::Verdict>> PeerClients::VerifyAll(
    const std::vector<v1::VerifyItem>& items) {
  std::vector<v1::Verdict> verdicts;
  verdicts.reserve(items.size());
  std::string who = absl::StrCat("verifier ", verifier_address_);
  // The call must outlive the verifier's own per-batch deadline.
  const std::chrono::milliseconds timeout =
      std::max(timeouts_.rpc, std::chrono::milliseconds(timeouts_.verifier_deadline_ms + 5000));
  // Batches no larger than an even share, so every serving verifier gets
  // some of the items.
  const size_t live = static_cast<size_t>(std::max(1, live_verifier_count()));
  const size_t batch_size =
      std::max<size_t>(1, std::min<size_t>(kVerifyBatch, (items.size() + live - 1) / live));
  for (size_t begin = 0; begin < items.size(); begin += batch_size) {
    const size_t end = std::min(items.size(), begin + batch_size);
    v1::VerifyRequest request;
    request.set_deadline_ms(timeouts_.verifier_deadline_ms);
    for (size_t i = begin; i < end; ++i) *request.add_items() = items[i];
    v1::VerifyResponse response;
    // A verifier that restarts or sheds load answers UNAVAILABLE: retried
    // with backoff (net.connect_retries, net.connect_backoff_ms). Verifying
    // is stateless, so a retried batch cannot count twice.
    int attempts = 0;
    const auto batch_start = std::chrono::steady_clock::now();
    absl::Status s = RetryWithBackoff(
        [&]() -> absl::Status {
          if (attempts++ > 0) verifier_retries_.fetch_add(1);
          response.Clear();
          // Batches (and retries) go round the serving verifiers.
          const Verifier& v = NextVerifier();
          who = absl::StrCat("verifier ", v.address);
          grpc::Status g = canceller_->Call(timeout, [&](grpc::ClientContext* ctx) {
            return v.stub->Verify(ctx, request, &response);
          });
          if (canceller_->cancelled()) return absl::CancelledError("cancelled");
          return g.ok() ? absl::OkStatus() : FromGrpcStatus(g, absl::StrCat(who, " Verify"));
        },
        retry_policy_, who, sleep_ ? sleep_ : RealSleep());
    if (!s.ok()) return s;
    MetricsRegistry& m = DefaultMetrics();
    m.Declare("rlpost_controller_verify_batch_seconds", MetricsRegistry::Type::kHistogram,
              "Seconds of one verify batch as the controller sees it (retries included).",
              {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30});
    m.Observe("rlpost_controller_verify_batch_seconds", {},
              std::chrono::duration<double>(std::chrono::steady_clock::now() - batch_start).count());
    m.Add("rlpost_controller_verified_items_total", {}, static_cast<double>(end - begin));
    if (static_cast<size_t>(response.verdicts_size()) != end - begin) {
      return absl::DataLossError(absl::StrCat(who, " returned ", response.verdicts_size(),
                                              " verdicts for ", end - begin, " items"));
    }
    for (int i = 0; i < response.verdicts_size(); ++i) {
      verdicts.push_back(std::move(*response.mutable_verdicts(i)));
    }
  }
  return verdicts;
}

}  // namespace rlpost
