#include "controller/testing/fake_peers.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/crc32c.h"
#include "common/seed.h"

namespace rlpost::testing {
namespace {

// The sum asked by an "a+b=" prompt; 0 for any other prompt.
int64_t SumOf(const std::string& prompt) {
  std::vector<std::string> parts = absl::StrSplit(prompt, absl::ByAnyChar("+="));
  int64_t a = 0, b = 0;
  if (parts.size() >= 2 && absl::SimpleAtoi(parts[0], &a) && absl::SimpleAtoi(parts[1], &b)) {
    return a + b;
  }
  return 0;
}

std::unique_ptr<ServerHost> StartOrDie(grpc::Service* service, const std::string& role) {
  absl::StatusOr<std::unique_ptr<ServerHost>> host =
      ServerHost::Start("127.0.0.1:0", {service}, "", role);
  if (!host.ok()) {
    std::fprintf(stderr, "cannot start fake %s: %s\n", role.c_str(),
                 std::string(host.status().message()).c_str());
    std::abort();
  }
  return std::move(*host);
}

}  // namespace

std::string LastBoxed(const std::string& text) {
  size_t at = text.rfind("\\boxed{");
  if (at == std::string::npos) return "";
  size_t begin = at + 7;
  size_t end = text.find('}', begin);
  if (end == std::string::npos) return "";
  return text.substr(begin, end - begin);
}

grpc::Status FakeRollout::Generate(grpc::ServerContext* context,
                                   const v1::GenerateRequest* request,
                                   grpc::ServerWriter<v1::GenerateResponse>* writer) {
  if (mode_ == Mode::kFailGenerate) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake rollout: engine crashed");
  }
  if (mode_ == Mode::kHang) {
    // Polls: the sync API has no cancellation callback.
    while (!context->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
  }
  absl::Notification* gate;
  {
    absl::MutexLock lock(&mu_);
    gate = gate_;
  }
  if (gate != nullptr) gate->WaitForNotification();
  int64_t version;
  bool straggle = false;
  {
    absl::MutexLock lock(&mu_);
    version = version_;
    ++generate_calls_;
    straggle = straggle_next_;
    straggle_next_ = false;
    if (dying_ || dead_) {
      if (!dead_ && on_death_ != nullptr) on_death_->Notify();
      dead_ = true;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake rollout: killed");
    }
  }
  const bool resuming = request->resume_size() > 0;
  const int n = resuming ? request->resume_size() : std::max(1, request->n());
  const int64_t sum = SumOf(request->prompt());
  const int64_t budget = request->token_budget();
  // Stream in reverse order: the controller must sort by sample_index.
  for (int i = n - 1; i >= 0; --i) {
    if (straggle && i == 0) {
      // The last member never finishes: the caller's deadline cancels it.
      while (!context->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    }
    // A continued sample keeps its seed, tokens and their versions.
    const v1::Completion* prior = resuming ? &request->resume(i) : nullptr;
    if (prior != nullptr && prior->finish_reason() != v1::FINISH_REASON_PARTIAL) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "resume: sample is not partial");
    }
    const uint64_t seed = prior != nullptr
                              ? prior->seed()
                              : SplitMix64(request->params().seed() + static_cast<uint64_t>(i));
    const bool correct = mode_ == Mode::kAllCorrect || seed % 3 != 0;
    const bool truncated = mode_ == Mode::kSomeTruncated && seed % 4 == 1;
    const std::string text =
        truncated ? std::string("adding the columns gives 1 + 2 + 3 + 4 + 5 + 6")
                  : absl::StrCat("adding the columns gives \\boxed{", correct ? sum : sum + 1, "}");
    const size_t done = prior != nullptr ? static_cast<size_t>(prior->token_ids_size()) : 0;
    const size_t end =
        budget > 0 ? std::min(text.size(), done + static_cast<size_t>(budget)) : text.size();
    v1::GenerateResponse response;
    v1::Completion* c = response.mutable_completion();
    if (prior != nullptr) *c = *prior;
    c->set_prompt_id(request->prompt_id());
    c->set_sample_index(i);
    if (prior == nullptr) {
      for (char ch : request->prompt()) c->add_prompt_token_ids(static_cast<unsigned char>(ch));
    }
    for (size_t k = done; k < end; ++k) {
      c->add_token_ids(static_cast<unsigned char>(text[k]));
      c->add_logprobs(-0.5f);
      c->add_weight_versions(version);
    }
    c->set_finish_reason(end < text.size() ? v1::FINISH_REASON_PARTIAL
                         : truncated       ? v1::FINISH_REASON_LENGTH
                                           : v1::FINISH_REASON_STOP);
    c->set_text(text.substr(0, end));
    c->set_seed(seed);
    if (!writer->Write(response)) break;
  }
  return grpc::Status::OK;
}

void FakeRollout::DieAtNextGenerate(absl::Notification* on_death) {
  absl::MutexLock lock(&mu_);
  dying_ = true;
  on_death_ = on_death;
}

void FakeRollout::StraggleNextGenerate() {
  absl::MutexLock lock(&mu_);
  straggle_next_ = true;
}

void FakeRollout::HoldGenerateUntil(absl::Notification* gate) {
  absl::MutexLock lock(&mu_);
  gate_ = gate;
}

grpc::Status FakeRollout::UpdateWeights(grpc::ServerContext*,
                                        grpc::ServerReader<v1::WeightChunk>* reader,
                                        v1::UpdateWeightsResponse* response) {
  {
    absl::MutexLock lock(&mu_);
    if (dead_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake rollout: killed");
  }
  v1::WeightChunk chunk;
  int64_t version = -1, bytes = 0;
  int32_t tensor_count = 0;
  std::vector<std::string> names;
  bool rollback = false;
  while (reader->Read(&chunk)) {
    rollback = rollback || chunk.rollback();
    if (Crc32c(chunk.data()) != chunk.checksum()) {
      return grpc::Status(grpc::StatusCode::DATA_LOSS,
                          absl::StrCat("checksum mismatch in ", chunk.tensor_name()));
    }
    if (version >= 0 && chunk.version() != version) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "mixed versions");
    }
    version = chunk.version();
    tensor_count = chunk.tensor_count();
    if (names.empty() || names.back() != chunk.tensor_name()) names.push_back(chunk.tensor_name());
    bytes += static_cast<int64_t>(chunk.data().size());
  }
  if (static_cast<int32_t>(names.size()) != tensor_count) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("got ", names.size(), " tensors of ", tensor_count));
  }
  absl::MutexLock lock(&mu_);
  if (version < version_ && !rollback) {  // as the real worker refuses it
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("weight version ", version, " is older than the loaded ",
                                     version_));
  }
  version_ = version;
  received_.push_back(version);
  response->set_weight_version(version);
  response->set_tensors(tensor_count);
  response->set_bytes(bytes);
  return grpc::Status::OK;
}

grpc::Status FakeRollout::GetInfo(grpc::ServerContext*, const v1::GetInfoRequest*,
                                  v1::RolloutInfo* response) {
  absl::MutexLock lock(&mu_);
  response->set_weight_version(version_);
  response->set_model("fake");
  return grpc::Status::OK;
}

int64_t FakeRollout::version() const {
  absl::MutexLock lock(&mu_);
  return version_;
}

std::vector<int64_t> FakeRollout::received_versions() const {
  absl::MutexLock lock(&mu_);
  return received_;
}

int64_t FakeRollout::generate_calls() const {
  absl::MutexLock lock(&mu_);
  return generate_calls_;
}

void FakeVerifier::FailNext(int calls) {
  absl::MutexLock lock(&mu_);
  fail_next_ = calls;
}

int64_t FakeVerifier::calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

grpc::Status FakeVerifier::Verify(grpc::ServerContext*, const v1::VerifyRequest* request,
                                  v1::VerifyResponse* response) {
  {
    absl::MutexLock lock(&mu_);
    ++calls_;
    if (fail_next_ > 0) {
      --fail_next_;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake verifier: restarting");
    }
  }
  for (const v1::VerifyItem& item : request->items()) {
    v1::Verdict* v = response->add_verdicts();
    v->set_id(item.id());
    v->set_verifier_version("fake-1");
    const std::string extracted = LastBoxed(item.response());
    if (extracted.empty()) {
      v->set_status(v1::VERDICT_STATUS_NO_ANSWER);
      continue;
    }
    v->set_status(v1::VERDICT_STATUS_OK);
    v->set_extracted(extracted);
    v->set_correct(extracted == item.reference());
    v->set_score(v->correct() ? 1.0f : 0.0f);
  }
  response->set_verifier_version("fake-1");
  return grpc::Status::OK;
}

grpc::Status FakeVerifier::GetInfo(grpc::ServerContext*, const v1::GetInfoRequest*,
                                   v1::VerifierInfo* response) {
  response->set_verifier_version("fake-1");
  response->add_kinds("math");
  return grpc::Status::OK;
}

void FakeLearner::set_train_hook(TrainHook hook) {
  absl::MutexLock lock(&mu_);
  hook_ = std::move(hook);
}

void FakeLearner::set_critic_only_steps(int64_t n) {
  absl::MutexLock lock(&mu_);
  critic_only_steps_ = n;
}

grpc::Status FakeLearner::Train(grpc::ServerContext*, const v1::TrainBatch* request,
                                v1::TrainResult* response) {
  TrainHook hook;
  {
    absl::MutexLock lock(&mu_);
    hook = hook_;
  }
  if (hook) hook(*request);
  absl::MutexLock lock(&mu_);
  if (request->behavior_version() > version_) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "batch from the future");
  }
  batches_.push_back(*request);
  if (request->objective() == v1::OBJECTIVE_POLICY_GRADIENT && request->step() <= critic_only_steps_) {
    response->set_critic_only(true);
  } else {
    ++version_;
  }
  response->set_weight_version(version_);
  response->set_loss(1.0f / static_cast<float>(std::max<int64_t>(version_, 1)));
  response->set_grad_norm(0.5f);
  response->set_world_size(1);
  return grpc::Status::OK;
}

grpc::Status FakeLearner::GetWeights(grpc::ServerContext*, const v1::GetWeightsRequest* request,
                                     grpc::ServerWriter<v1::WeightChunk>* writer) {
  int64_t version;
  {
    // Weights are made up from the version number, so every version up to
    // the latest is "retained".
    absl::MutexLock lock(&mu_);
    version = version_;
    if (request->version() > version_) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "weight version not published yet");
    }
    if (request->version() > 0) version = request->version();
  }
  // Two tensors; the first in two chunks.
  const std::string a = absl::StrCat("tensor-a-bytes-v", version, "-padding");
  const std::string b = absl::StrCat("b", version);
  struct Piece {
    std::string name, data;
    int64_t offset, total;
  };
  const size_t half = a.size() / 2;
  for (const Piece& p : {Piece{"a", a.substr(0, half), 0, static_cast<int64_t>(a.size())},
                         Piece{"a", a.substr(half), static_cast<int64_t>(half),
                               static_cast<int64_t>(a.size())},
                         Piece{"b", b, 0, static_cast<int64_t>(b.size())}}) {
    v1::WeightChunk chunk;
    chunk.set_version(version);
    chunk.set_tensor_name(p.name);
    chunk.set_dtype(v1::DTYPE_INT32);
    chunk.add_shape(p.total);
    chunk.set_offset(p.offset);
    chunk.set_total_bytes(p.total);
    chunk.set_data(p.data);
    chunk.set_checksum(Crc32c(p.data));
    chunk.set_tensor_count(2);
    if (!writer->Write(chunk)) break;
  }
  return grpc::Status::OK;
}

grpc::Status FakeLearner::SaveCheckpoint(grpc::ServerContext*,
                                         const v1::SaveCheckpointRequest* request,
                                         v1::SaveCheckpointResponse* response) {
  absl::MutexLock lock(&mu_);
  checkpoint_dir_ = request->directory();
  const std::string dir =
      request->keep_last() > 0
          ? absl::StrCat(request->directory(), "/version-", absl::Dec(version_, absl::kZeroPad9))
          : request->directory();
  if (request->keep_last() > 0) saved_ = {dir, request->client_state(), version_};
  response->set_directory(dir);
  response->set_weight_version(version_);
  return grpc::Status::OK;
}

grpc::Status FakeLearner::Restore(grpc::ServerContext*, const v1::RestoreRequest* request,
                                  v1::LearnerInfo* response) {
  absl::MutexLock lock(&mu_);
  if (saved_.dir.empty() || saved_.dir.rfind(request->directory(), 0) != 0) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no trainer checkpoint under '", request->directory(), "'"));
  }
  resumed_ = saved_;
  version_ = saved_.version;
  ++restores_;
  InfoLocked(response);
  return grpc::Status::OK;
}

int64_t FakeLearner::restores() const {
  absl::MutexLock lock(&mu_);
  return restores_;
}

bool FakeLearner::RestartFromLastCheckpoint() {
  absl::MutexLock lock(&mu_);
  if (saved_.dir.empty()) return false;
  resumed_ = saved_;
  version_ = saved_.version;
  return true;
}

void FakeLearner::InfoLocked(v1::LearnerInfo* response) const {
  response->set_weight_version(version_);
  response->set_world_size(1);
  response->set_model("fake");
  response->set_resumed_from(resumed_.dir);
  response->set_client_state(resumed_.client_state);
}

grpc::Status FakeLearner::GetInfo(grpc::ServerContext*, const v1::GetInfoRequest*,
                                  v1::LearnerInfo* response) {
  absl::MutexLock lock(&mu_);
  InfoLocked(response);
  return grpc::Status::OK;
}

int64_t FakeLearner::version() const {
  absl::MutexLock lock(&mu_);
  return version_;
}

std::vector<v1::TrainBatch> FakeLearner::batches() const {
  absl::MutexLock lock(&mu_);
  return batches_;
}

std::string FakeLearner::checkpoint_dir() const {
  absl::MutexLock lock(&mu_);
  return checkpoint_dir_;
}

FakeCluster::FakeCluster(int rollout_count, FakeRollout::Mode mode) {
  for (int i = 0; i < rollout_count; ++i) {
    rollouts.push_back(std::make_unique<FakeRollout>(mode));
    rollout_hosts_.push_back(StartOrDie(rollouts.back().get(), "fake rollout"));
  }
  verifier_host_ = StartOrDie(&verifier, "fake verifier");
  learner_host_ = StartOrDie(&learner, "fake learner");
}

FakeCluster::~FakeCluster() {
  for (auto& host : rollout_hosts_) host->Shutdown();
  verifier_host_->Shutdown();
  learner_host_->Shutdown();
}

std::vector<std::string> FakeCluster::rollout_addresses() const {
  std::vector<std::string> out;
  for (const auto& host : rollout_hosts_) out.push_back(host->address());
  return out;
}

}  // namespace rlpost::testing
