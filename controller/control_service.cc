#include "controller/control_service.h"

#include "common/config.h"
#include "common/run_config.h"

#include "absl/strings/str_cat.h"
#include "common/bearer_token.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "reward/plugin_runner.h"

namespace rlpost {
namespace {

grpc::Status Reply(const absl::StatusOr<v1::RunStatus>& result, v1::RunStatus* response) {
  if (result.ok()) *response = *result;
  return ToGrpcStatus(result.status());
}

}  // namespace

grpc::Status ControlServiceImpl::GetStatus(grpc::ServerContext*, const v1::GetStatusRequest*,
                                           v1::RunStatus* response) {
  *response = control_->Status();
  return grpc::Status::OK;
}

grpc::Status ControlServiceImpl::Authorize(const grpc::ServerContext& context,
                                           const char* action) const {
  if (HasBearerToken(context, token_)) return grpc::Status::OK;
  RLPOST_LOG(WARNING) << "control: " << action << " refused: no valid bearer token";
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      absl::StrCat(action, " needs this controller's bearer token (rlctl "
                                           "--token-file FILE); nothing was changed"));
}

grpc::Status ControlServiceImpl::Pause(grpc::ServerContext* context, const v1::PauseRequest*,
                                       v1::RunStatus* response) {
  if (grpc::Status a = Authorize(*context, "pause"); !a.ok()) return a;
  RLPOST_LOG(INFO) << "control: pause requested";
  return Reply(control_->Pause(), response);
}

grpc::Status ControlServiceImpl::Resume(grpc::ServerContext* context, const v1::ResumeRequest*,
                                        v1::RunStatus* response) {
  if (grpc::Status a = Authorize(*context, "resume"); !a.ok()) return a;
  RLPOST_LOG(INFO) << "control: resume requested";
  return Reply(control_->Resume(), response);
}

grpc::Status ControlServiceImpl::Stop(grpc::ServerContext* context, const v1::StopRequest*,
                                      v1::RunStatus* response) {
  if (grpc::Status a = Authorize(*context, "stop"); !a.ok()) return a;
  RLPOST_LOG(INFO) << "control: stop requested";
  return Reply(control_->Stop(), response);
}

grpc::Status ControlServiceImpl::Checkpoint(grpc::ServerContext* context,
                                            const v1::CheckpointRequest*,
                                            v1::RunStatus* response) {
  if (grpc::Status a = Authorize(*context, "checkpoint"); !a.ok()) return a;
  RLPOST_LOG(INFO) << "control: checkpoint requested";
  return Reply(control_->RequestCheckpoint(), response);
}

grpc::Status ControlServiceImpl::Heartbeat(grpc::ServerContext* context,
                                           const v1::HeartbeatRequest* request,
                                           v1::HeartbeatResponse* response) {
  if (grpc::Status a = Authorize(*context, "Heartbeat"); !a.ok()) return a;
  if (request->address().empty()) {
    return ToGrpcStatus(absl::InvalidArgumentError("Heartbeat needs the worker's address"));
  }
  response->set_known(control_->Heartbeat(request->address(), request->role()));
  return grpc::Status::OK;
}

grpc::Status ControlServiceImpl::SubmitRun(grpc::ServerContext* context,
                                           const v1::SubmitRunRequest* request,
                                           v1::RunStatus* response) {
  if (grpc::Status a = Authorize(*context, "SubmitRun"); !a.ok()) return a;
  // The config is checked here, so a bad one is refused with the key named
  // and nothing starts.
  absl::StatusOr<Config> config =
      Config::FromYaml(RunConfigSchema(), request->config_yaml(), "the submitted config");
  for (const std::string& o : request->overrides()) {
    if (!config.ok()) break;
    absl::Status s = config->ApplyOverride(o);
    if (!s.ok()) config = s;
  }
  absl::StatusOr<RunConfig> parsed =
      config.ok() ? ParseRunConfig(*config) : absl::StatusOr<RunConfig>(config.status());
  if (!parsed.ok()) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("SubmitRun: ", parsed.status().message())));
  }
  // Reward plugins too: each is started once in a scratch host (a missing
  // file, another ABI, a config the plugin refuses), so the run cannot fail on
  // one after it was accepted.
  for (const RewardPluginConfig& p : parsed->reward_plugins) {
    RewardPluginRunner::Options o;
    o.plugin = p;
    o.host_binary = parsed->reward_host_binary;
    absl::Status s = RewardPluginRunner::Check(std::move(o));
    if (!s.ok()) {
      return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat("SubmitRun: ", s.message())));
    }
  }
  v1::SubmitRunRequest job = *request;
  if (job.rollouts().empty()) {
    for (const std::string& r : default_peers_.rollouts) job.add_rollouts(r);
  }
  if (job.verifier().empty()) job.set_verifier(default_peers_.verifier);
  if (job.learner().empty()) job.set_learner(default_peers_.learner);
  if (job.rollouts().empty() || job.verifier().empty() || job.learner().empty()) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        "SubmitRun: no rollout, verifier or learner address: name them in the request "
        "(rlctl run submit --rollout A,B --verifier V --learner L) or start the controller "
        "with --rollout, --verifier and --learner"));
  }
  absl::Status s = control_->Submit(std::move(job), parsed->name, parsed->rl_steps);
  if (!s.ok()) return ToGrpcStatus(s);
  RLPOST_LOG(INFO) << "control: run '" << parsed->name << "' submitted";
  *response = control_->Status();
  return grpc::Status::OK;
}

grpc::Status ControlServiceImpl::GetMetrics(grpc::ServerContext*,
                                            const v1::GetMetricsRequest* request,
                                            v1::StepMetricsList* response) {
  if (request->last() < 0) {
    return ToGrpcStatus(absl::InvalidArgumentError("GetMetrics: last must not be negative"));
  }
  for (std::string& line : control_->MetricsLines(request->last())) {
    response->add_steps_json(std::move(line));
  }
  return grpc::Status::OK;
}

grpc::Status ControlServiceImpl::GetConfig(grpc::ServerContext*, const v1::GetConfigRequest*,
                                           v1::RunConfigText* response) {
  response->set_yaml(control_->ConfigYaml());
  return grpc::Status::OK;
}

grpc::Status ControlServiceImpl::RegisterWorker(grpc::ServerContext* context,
                                                const v1::RegisterWorkerRequest* request,
                                                v1::RunStatus* response) {
  if (grpc::Status a = Authorize(*context, "RegisterWorker"); !a.ok()) return a;
  if (request->role() == "verifier") {
    RLPOST_LOG(INFO) << "control: verifier " << request->address() << " registers";
    return Reply(control_->RegisterVerifier(request->address()), response);
  }
  if (request->role() != "rollout") {
    return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "RegisterWorker: role '", request->role(),
        "' cannot join a running job; rollout workers and verifiers can")));
  }
  RLPOST_LOG(INFO) << "control: rollout worker " << request->address() << " registers";
  return Reply(control_->RegisterRollout(request->address()), response);
}

grpc::Status ControlServiceImpl::DrainWorker(grpc::ServerContext* context,
                                             const v1::DrainWorkerRequest* request,
                                             v1::RunStatus* response) {
  if (grpc::Status a = Authorize(*context, "drain"); !a.ok()) return a;
  RLPOST_LOG(INFO) << "control: drain of " << request->address() << " requested";
  return Reply(control_->DrainRollout(request->address()), response);
}

}  // namespace rlpost
