#include "learner/learner_service.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "common/metrics_registry.h"
#include "common/weight_chunks.h"
#include "learner/lr_schedule.h"
#include "model/safetensors.h"

namespace rlpost {
namespace {

// Command channel rank 0 -> other ranks: one tag byte, then the payload.
constexpr char kTrainTag = 'T';
constexpr char kStopTag = 'Q';
constexpr char kRestoreTag = 'R';

}  // namespace

absl::Status BuildTrainInputs(const v1::TrainBatch& batch, const RunConfig& config,
                              const CharTokenizer& tokenizer,
                              std::vector<TrainExample>* examples, StepOptions* options) {
  if (batch.objective() != v1::OBJECTIVE_POLICY_GRADIENT && batch.objective() != v1::OBJECTIVE_SFT) {
    return absl::InvalidArgumentError("TrainBatch.objective must be POLICY_GRADIENT or SFT");
  }
  if (batch.samples_size() == 0) return absl::InvalidArgumentError("TrainBatch has no samples");
  bool pg = batch.objective() == v1::OBJECTIVE_POLICY_GRADIENT;
  options->objective = pg ? TrainObjective::kPolicyGradient : TrainObjective::kSft;
  if (pg || batch.step() > 0) {
    // RL steps (policy gradient, or SFT on accepted samples in RFT mode) use
    // the RL schedule; it follows the batch's RL step, which every rank
    // receives. The warm start's SFT batches (step 0) use sft.lr.
    LrSchedule schedule;
    schedule.base = config.rl_lr;
    schedule.warmup_steps = config.rl_lr_warmup_steps;
    schedule.total_steps = config.rl_steps;
    schedule.cosine = config.rl_lr_schedule == "cosine";
    schedule.min_ratio = config.rl_lr_min_ratio;
    options->lr = ScheduledLearningRate(schedule, std::max<int64_t>(batch.step() - 1, 0));
  } else {
    options->lr = config.sft_lr;
  }
  options->policy.clip_low = config.rl_clip_eps;
  options->policy.clip_high = config.rl_clip_high > 0 ? config.rl_clip_high : config.rl_clip_eps;
  options->policy.dual_clip = config.rl_dual_clip;
  options->policy.sequence_ratio = config.rl_ratio == "sequence";
  options->policy.tis_cap = config.rl_tis_cap;
  absl::StatusOr<LossAggregation> agg = ParseLossAggregation(config.rl_loss_agg);
  if (!agg.ok()) return agg.status();
  options->aggregation = *agg;
  options->norm_length = static_cast<double>(config.rl_max_new_tokens);
  options->kl_coef = config.rl_kl_coef;
  absl::StatusOr<KlEstimator> kl = ParseKlEstimator(config.rl_kl_estimator);
  if (!kl.ok()) return kl.status();
  options->kl_estimator = *kl;
  options->entropy_coef = config.rl_entropy_coef;
  options->nll_coef = config.rl_nll_coef;
  options->aux_loss_coef = config.rl_aux_loss_coef;
  options->router_z_loss_coef = config.rl_router_z_loss_coef;
  options->micro_batch_tokens = config.learner_micro_batch_tokens;
  options->bf16 = config.learner_dtype == "bfloat16";
  options->checkpoint_activations = config.learner_activation_checkpointing;
  if (pg && config.rl_advantage == "gae") {
    CriticOptions& c = options->critic;
    c.enabled = true;
    c.gae.gamma = config.rl_gae_gamma;
    c.gae.lambda_policy = config.rl_gae_lambda;
    c.gae.lambda_critic = config.rl_gae_lambda_critic;
    c.gae.length_adaptive_alpha = config.rl_gae_length_adaptive_alpha;
    c.whiten = config.rl_whiten_advantages;
    c.value_clip = config.rl_value_clip;
    c.grad_clip = config.grad_clip;
    c.kl_in_reward_coef = config.rl_kl_reward_coef;
    // The critic follows the policy's schedule, scaled to its own rate.
    const double base = config.rl_critic_lr > 0 ? config.rl_critic_lr : config.rl_lr;
    c.lr = config.rl_lr > 0 ? options->lr * base / config.rl_lr : base;
    c.critic_only = batch.step() <= config.rl_value_warmup_steps;
  }
  options->temperature = pg ? config.rl_temperature : 1.0;
  options->grad_clip = config.grad_clip;
  examples->clear();
  for (int i = 0; i < batch.samples_size(); ++i) {
    const v1::TrainSample& s = batch.samples(i);
    TrainExample ex;
    if (s.prompt_token_ids_size() > 0 || s.response_token_ids_size() > 0) {
      ex.prompt.assign(s.prompt_token_ids().begin(), s.prompt_token_ids().end());
      ex.response.assign(s.response_token_ids().begin(), s.response_token_ids().end());
    } else {
      auto prompt = tokenizer.Encode(s.prompt_text());
      auto response = tokenizer.Encode(s.response_text());
      if (!prompt.ok() || !response.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sample ", i, ": ", (!prompt.ok() ? prompt.status() : response.status()).message()));
      }
      ex.prompt.push_back(CharTokenizer::kBos);
      ex.prompt.insert(ex.prompt.end(), prompt->begin(), prompt->end());
      ex.response = *response;
      ex.response.push_back(CharTokenizer::kEos);
    }
    if (ex.response.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("sample ", i, " has an empty response"));
    }
    if (pg) {
      if (s.old_logprobs_size() != static_cast<int>(ex.response.size())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sample ", i, ": ", s.old_logprobs_size(), " old_logprobs for ",
            ex.response.size(), " response tokens"));
      }
      ex.old_logprobs.assign(s.old_logprobs().begin(), s.old_logprobs().end());
      ex.advantage = s.advantage();
      ex.reward = s.reward();
      ex.routed_experts.assign(s.routed_experts().begin(), s.routed_experts().end());
    }
    examples->push_back(std::move(ex));
  }
  return absl::OkStatus();
}

LearnerServiceImpl::LearnerServiceImpl(Trainer* trainer, ProcessGroupHandle* group,
                                       const RunConfig& config, const ResumePoint* resumed)
    : trainer_(trainer), group_(group), config_(config) {
  if (resumed != nullptr) {
    resumed_ = *resumed;
    steps_ = resumed->optimizer_steps;
  }
  Publish();
}

namespace {

// The step just trained, for /metrics.
void ExportTrainMetrics(const v1::TrainResult& r) {
  MetricsRegistry& m = DefaultMetrics();
  m.Add("rlpost_learner_steps_total", {{"result", r.skipped() ? "skipped" : "applied"}});
  m.Add("rlpost_learner_tokens_total", {}, static_cast<double>(r.tokens()));
  m.Add("rlpost_learner_train_seconds_total", {}, r.seconds());
  m.Set("rlpost_learner_weight_version", {}, static_cast<double>(r.weight_version()));
  m.Set("rlpost_learner_loss", {}, r.loss());
  m.Set("rlpost_learner_grad_norm", {}, r.grad_norm());
  m.Set("rlpost_learner_clip_fraction", {}, r.clip_fraction());
  m.Set("rlpost_learner_approx_kl", {}, r.approx_kl());
  m.Set("rlpost_learner_ref_kl", {}, r.ref_kl());
  m.Set("rlpost_learner_entropy", {}, r.entropy());
  m.Set("rlpost_learner_value_loss", {}, r.value_loss());
}

}  // namespace

void LearnerServiceImpl::Publish() {
  auto weights = std::make_shared<const std::vector<RawTensor>>(trainer_->ExportWeights());
  std::lock_guard<std::mutex> lock(published_mu_);
  published_[trainer_->weight_version()] = std::move(weights);
  while (static_cast<int64_t>(published_.size()) > config_.learner_retained_versions) {
    published_.erase(published_.begin());
  }
}

grpc::Status LearnerServiceImpl::Train(grpc::ServerContext* /*context*/,
                                       const v1::TrainBatch* request, v1::TrainResult* response) {
  std::vector<TrainExample> examples;
  StepOptions options;
  absl::Status s = BuildTrainInputs(*request, config_, tokenizer_, &examples, &options);
  if (!s.ok()) return ToGrpcStatus(s);
  std::lock_guard<std::mutex> lock(train_mu_);
  if (request->behavior_version() > trainer_->weight_version()) {
    return ToGrpcStatus(absl::FailedPreconditionError(absl::StrCat(
        "batch sampled with weight version ", request->behavior_version(),
        " but the learner is at ", trainer_->weight_version())));
  }
  auto t0 = std::chrono::steady_clock::now();
  if (group_ != nullptr && group_->world_size() > 1) {
    std::string payload(1, kTrainTag);
    payload += request->SerializeAsString();
    s = group_->BroadcastBytes(&payload);
    if (!s.ok()) return ToGrpcStatus(s);
  }
  absl::StatusOr<StepStats> stats = trainer_->Step(examples, options);
  if (!stats.ok()) return ToGrpcStatus(stats.status());
  Publish();
  ++steps_;
  response->set_weight_version(stats->weight_version);
  response->set_loss(static_cast<float>(stats->loss));
  response->set_grad_norm(static_cast<float>(stats->grad_norm));
  response->set_clip_fraction(static_cast<float>(stats->clip_fraction));
  response->set_approx_kl(static_cast<float>(stats->approx_kl));
  response->set_ref_kl(static_cast<float>(stats->ref_kl));
  response->set_entropy(static_cast<float>(stats->entropy));
  response->set_skipped(stats->skipped);
  response->set_critic_only(!stats->skipped && !stats->policy_updated);
  response->set_value_loss(static_cast<float>(stats->value_loss));
  response->set_value_mean(static_cast<float>(stats->value_mean));
  response->set_skip_reason(stats->skip_reason);
  if (stats->skipped) {
    RLPOST_LOG(WARNING) << "training step skipped (" << stats->skip_reason
                        << "); weights stay at version " << stats->weight_version;
  }
  response->set_tokens(stats->tokens);
  response->set_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  ExportTrainMetrics(*response);
  response->set_world_size(group_ != nullptr ? group_->world_size() : 1);
  return grpc::Status::OK;
}

grpc::Status LearnerServiceImpl::GetWeights(grpc::ServerContext* context,
                                            const v1::GetWeightsRequest* request,
                                            grpc::ServerWriter<v1::WeightChunk>* writer) {
  std::shared_ptr<const std::vector<RawTensor>> weights;
  int64_t version = 0;
  {
    std::lock_guard<std::mutex> lock(published_mu_);
    if (request->version() <= 0) {
      version = published_.rbegin()->first;
      weights = published_.rbegin()->second;
    } else {
      auto it = published_.find(request->version());
      if (it == published_.end()) {
        return ToGrpcStatus(absl::NotFoundError(absl::StrCat(
            "weight version ", request->version(), " is not retained (have ",
            published_.begin()->first, "..", published_.rbegin()->first, ")")));
      }
      version = it->first;
      weights = it->second;
    }
  }
  if (request->dtype() == v1::DTYPE_BFLOAT16) {
    auto converted = std::make_shared<std::vector<RawTensor>>();
    for (const RawTensor& t : *weights) {
      absl::StatusOr<RawTensor> bf16 = ConvertDType(t, RawDType::kBFloat16);
      if (!bf16.ok()) return ToGrpcStatus(bf16.status());
      converted->push_back(std::move(*bf16));
    }
    weights = std::move(converted);
  } else if (request->dtype() != v1::DTYPE_UNSPECIFIED && request->dtype() != v1::DTYPE_FLOAT32) {
    return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "GetWeights dtype ", v1::DType_Name(request->dtype()),
        " is not served; ask for FLOAT32 or BFLOAT16")));
  }
  for (const v1::WeightChunk& chunk : ChunkWeights(version, *weights, request->chunk_bytes())) {
    if (context->IsCancelled() || !writer->Write(chunk)) return grpc::Status::CANCELLED;
  }
  return grpc::Status::OK;
}

grpc::Status LearnerServiceImpl::SaveCheckpoint(grpc::ServerContext* /*context*/,
                                                const v1::SaveCheckpointRequest* request,
                                                v1::SaveCheckpointResponse* response) {
  if (request->directory().empty()) {
    return ToGrpcStatus(absl::InvalidArgumentError("SaveCheckpoint needs a directory"));
  }
  std::lock_guard<std::mutex> lock(train_mu_);
  CheckpointOptions options;
  options.keep_last = request->keep_last();
  options.client_state = request->client_state();
  absl::StatusOr<std::string> dir = trainer_->SaveCheckpoint(request->directory(), options);
  if (!dir.ok()) return ToGrpcStatus(dir.status());
  response->set_directory(*dir);
  response->set_weight_version(trainer_->weight_version());
  return grpc::Status::OK;
}

grpc::Status LearnerServiceImpl::Restore(grpc::ServerContext* /*context*/,
                                         const v1::RestoreRequest* request,
                                         v1::LearnerInfo* response) {
  if (request->directory().empty()) {
    return ToGrpcStatus(absl::InvalidArgumentError("Restore needs a checkpoint directory"));
  }
  std::lock_guard<std::mutex> lock(train_mu_);
  // Rank 0 first: a checkpoint it cannot read changes nothing anywhere.
  absl::StatusOr<ResumePoint> point = trainer_->LoadCheckpoint(request->directory());
  if (!point.ok()) return ToGrpcStatus(point.status());
  if (group_ != nullptr && group_->world_size() > 1) {
    std::string payload(1, kRestoreTag);
    payload += point->directory;  // the resolved one: every rank loads the same
    absl::Status s = group_->BroadcastBytes(&payload);
    if (!s.ok()) return ToGrpcStatus(s);
  }
  {
    std::lock_guard<std::mutex> published(published_mu_);
    published_.clear();
  }
  Publish();
  resumed_ = *point;
  steps_ = point->optimizer_steps;
  RLPOST_LOG(INFO) << "restored " << point->directory << " (weight version "
                   << point->weight_version << ") on every rank";
  return GetInfo(nullptr, nullptr, response);  // what GetInfo now says
}

grpc::Status LearnerServiceImpl::GetInfo(grpc::ServerContext* /*context*/,
                                         const v1::GetInfoRequest* /*request*/,
                                         v1::LearnerInfo* response) {
  std::lock_guard<std::mutex> lock(published_mu_);
  response->set_weight_version(published_.rbegin()->first);
  response->set_world_size(group_ != nullptr ? group_->world_size() : 1);
  response->set_model(trainer_->Describe());
  response->set_steps(steps_);
  response->set_resumed_from(resumed_.directory);
  response->set_client_state(resumed_.client_state);
  return grpc::Status::OK;
}

void LearnerServiceImpl::StopFollowers() {
  if (group_ == nullptr || group_->world_size() <= 1) return;
  std::lock_guard<std::mutex> lock(train_mu_);
  std::string payload(1, kStopTag);
  absl::Status s = group_->BroadcastBytes(&payload);
  if (!s.ok()) RLPOST_LOG(WARNING) << "could not stop the other ranks: " << s.message();
}

absl::Status RunFollower(Trainer* trainer, ProcessGroupHandle* group, const RunConfig& config) {
  CharTokenizer tokenizer;
  while (true) {
    std::string payload;
    absl::Status s = group->BroadcastBytes(&payload);
    if (!s.ok()) return s;
    if (payload.empty() || payload[0] == kStopTag) return absl::OkStatus();
    if (payload[0] == kRestoreTag) {
      absl::StatusOr<ResumePoint> point = trainer->LoadCheckpoint(payload.substr(1));
      if (!point.ok()) {
        return absl::Status(point.status().code(),
                            absl::StrCat("restore on rank ", group->rank(), ": ",
                                         point.status().message()));
      }
      RLPOST_LOG(INFO) << "restored " << point->directory;
      continue;
    }
    v1::TrainBatch batch;
    if (payload[0] != kTrainTag || !batch.ParseFromString(payload.substr(1))) {
      return absl::InternalError("malformed command from learner rank 0");
    }
    std::vector<TrainExample> examples;
    StepOptions options;
    s = BuildTrainInputs(batch, config, tokenizer, &examples, &options);
    if (!s.ok()) return s;  // rank 0 validated the same batch: cannot happen
    absl::StatusOr<StepStats> stats = trainer->Step(examples, options);
    if (!stats.ok()) {
      RLPOST_LOG(WARNING) << "step failed on rank " << group->rank() << ": " << stats.status();
    }
  }
}

}  // namespace rlpost
