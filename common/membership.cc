#include "common/membership.h"

#include "absl/strings/str_cat.h"
#include "common/bearer_token.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "rlpost/v1/control.grpc.pb.h"

namespace rlpost {

ControllerMembership::Options ControllerMembership::Options::For(const std::string& controller,
                                                                 const std::string& advertise,
                                                                 const std::string& role,
                                                                 const std::string& token,
                                                                 const RunConfig& config) {
  Options m;
  m.controller = controller;
  m.advertise = advertise;
  m.role = role;
  m.token = token;
  m.policy.max_attempts = static_cast<int>(config.connect_retries);
  m.policy.initial_backoff = std::chrono::milliseconds(config.connect_backoff_ms);
  m.heartbeat = std::chrono::milliseconds(config.heartbeat_ms);
  return m;
}

ControllerMembership::ControllerMembership(Options options) : options_(std::move(options)) {}

ControllerMembership::~ControllerMembership() { Stop(); }

void ControllerMembership::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

absl::Status ControllerMembership::RegisterOnce() {
  auto stub = v1::ControlService::NewStub(MakeChannel(options_.controller));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  AttachBearerToken(&ctx, options_.token);
  v1::RegisterWorkerRequest request;
  request.set_address(options_.advertise);
  request.set_role(options_.role);
  v1::RunStatus status;
  return FromGrpcStatus(stub->RegisterWorker(&ctx, request, &status),
                        absl::StrCat("controller ", options_.controller, " RegisterWorker"));
}

absl::StatusOr<std::unique_ptr<ControllerMembership>> ControllerMembership::Join(Options options) {
  std::unique_ptr<ControllerMembership> m(new ControllerMembership(std::move(options)));
  absl::Status joined = RetryWithBackoff([&] { return m->RegisterOnce(); }, m->options_.policy,
                                         absl::StrCat("controller ", m->options_.controller));
  if (!joined.ok()) return joined;
  RLPOST_LOG(INFO) << "registered with controller " << m->options_.controller << " as "
                   << m->options_.role << " " << m->options_.advertise;
  m->thread_ = std::thread([raw = m.get()] { raw->Beat(); });
  return m;
}

void ControllerMembership::Beat() {
  auto stub = v1::ControlService::NewStub(MakeChannel(options_.controller));
  auto next = std::chrono::steady_clock::now() + options_.heartbeat;
  while (!stop_.load()) {
    if (std::chrono::steady_clock::now() < next) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    next += options_.heartbeat;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + options_.heartbeat);
    AttachBearerToken(&ctx, options_.token);
    v1::HeartbeatRequest request;
    request.set_address(options_.advertise);
    request.set_role(options_.role);
    if (options_.weight_version) request.set_weight_version(options_.weight_version());
    v1::HeartbeatResponse response;
    if (stub->Heartbeat(&ctx, request, &response).ok() && !response.known()) {
      absl::Status again = RegisterOnce();
      RLPOST_LOG(INFO) << "the controller did not count this " << options_.role
                       << " as serving; registered again: "
                       << (again.ok() ? "ok" : std::string(again.message()));
    }
  }
}

}  // namespace rlpost
