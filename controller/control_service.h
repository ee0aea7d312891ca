#pragma once
// The gRPC front end of RunControl: the control API that rlctl speaks.
// Handlers only read or flip RunControl state; none of them blocks.
//
// Thread-safe; the RunControl is not owned and must outlive the service.

#include <grpcpp/grpcpp.h>

#include "controller/peer_clients.h"
#include "controller/run_control.h"
#include <string>
#include <utility>

#include "rlpost/v1/control.grpc.pb.h"

namespace rlpost {

class ControlServiceImpl final : public v1::ControlService::Service {
 public:
  // With a non-empty `token`, mutating calls (Pause, Resume, Stop,
  // Checkpoint, RegisterWorker, DrainWorker) need it as a bearer token: UNAUTHENTICATED,
  // nothing changed, otherwise. GetStatus and GetConfig stay open.
  explicit ControlServiceImpl(RunControl* control, std::string token = "")
      : control_(control), token_(std::move(token)) {}

  grpc::Status GetStatus(grpc::ServerContext* context, const v1::GetStatusRequest* request,
                         v1::RunStatus* response) override;
  grpc::Status Pause(grpc::ServerContext* context, const v1::PauseRequest* request,
                     v1::RunStatus* response) override;
  grpc::Status Resume(grpc::ServerContext* context, const v1::ResumeRequest* request,
                      v1::RunStatus* response) override;
  grpc::Status Stop(grpc::ServerContext* context, const v1::StopRequest* request,
                    v1::RunStatus* response) override;
  grpc::Status Checkpoint(grpc::ServerContext* context, const v1::CheckpointRequest* request,
                          v1::RunStatus* response) override;
  grpc::Status GetMetrics(grpc::ServerContext* context, const v1::GetMetricsRequest* request,
                          v1::StepMetricsList* response) override;
  grpc::Status SubmitRun(grpc::ServerContext* context, const v1::SubmitRunRequest* request,
                         v1::RunStatus* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  // Process addresses a submitted run uses when it names none (the
  // controller's --rollout/--verifier/--learner flags).
  void set_default_peers(PeerAddresses peers) { default_peers_ = std::move(peers); }
  grpc::Status GetConfig(grpc::ServerContext* context, const v1::GetConfigRequest* request,
                         v1::RunConfigText* response) override;
  grpc::Status RegisterWorker(grpc::ServerContext* context,
                              const v1::RegisterWorkerRequest* request,
                              v1::RunStatus* response) override;
  grpc::Status DrainWorker(grpc::ServerContext* context, const v1::DrainWorkerRequest* request,
                           v1::RunStatus* response) override;

 private:
  grpc::Status Authorize(const grpc::ServerContext& context, const char* action) const;

  RunControl* control_;
  std::string token_;
  PeerAddresses default_peers_;
};

}  // namespace rlpost
