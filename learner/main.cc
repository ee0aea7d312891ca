// rlpost-learner: one learner rank. Rank 0 serves LearnerService; the other
// ranks follow it over torch c10d (Gloo).
#include <ATen/Parallel.h>
#include <unistd.h>

#include <cstdlib>
#include <initializer_list>
#include <iostream>
#include <optional>
#include <thread>

#include "absl/strings/numbers.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "common/tls.h"
#include "common/metrics_http_server.h"
#include "common/run_config.h"
#include "learner/collective.h"
#include "learner/learner_service.h"
#include "learner/trainer.h"
#include "model/char_tokenizer.h"
#include "model/device.h"

namespace {

// The first of the variables that is set: torchrun's names, then Kubeflow's
// PyTorchJob (PET_*), then an Indexed Job's completion index for the rank.
std::string EnvChain(std::initializer_list<const char*> names, const std::string& fallback) {
  for (const char* name : names) {
    const char* v = std::getenv(name);
    if (v != nullptr && *v != '\0') return v;
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace rlpost;
  InstallShutdownSignals();
  std::string listen, port_file, config_path, resume, help, metrics_listen, metrics_port_file;
  std::string rank_s = EnvChain({"RANK", "PET_NODE_RANK", "JOB_COMPLETION_INDEX"}, "0"),
              world_s = EnvChain({"WORLD_SIZE", "PET_NNODES"}, ""),
              master_addr = EnvChain({"MASTER_ADDR", "PET_MASTER_ADDR"}, "127.0.0.1"),
              master_port_s = EnvChain({"MASTER_PORT", "PET_MASTER_PORT"}, "29500"),
              local_rank_s = EnvChain({"LOCAL_RANK"}, "0");
  std::vector<FlagSpec> flags = {
      {"listen", &listen,
       "HOST:PORT to serve on (rank 0: the learner API; other ranks: gRPC health checks only; "
       "port 0 picks a free port)"},
      {"port-file", &port_file, "write the bound port to this file (rank 0)"},
      {"config", &config_path, "run config YAML; key=value overrides follow"},
      {"resume", &resume,
       "trainer checkpoint (or keep-last root) to resume from; every rank reads it "
       "(default with run.resume=true: <run.output_dir>/<run.name>/checkpoints)"},
      {"rank", &rank_s,
       "this rank (default $RANK, $PET_NODE_RANK or $JOB_COMPLETION_INDEX (an Indexed Job), "
       "else 0)"},
      {"world-size", &world_s, "number of ranks (default $WORLD_SIZE or learner.world_size)"},
      {"master-addr", &master_addr, "rendezvous host (default $MASTER_ADDR or 127.0.0.1)"},
      {"master-port", &master_port_s, "rendezvous port (default $MASTER_PORT or 29500)"},
      {"local-rank", &local_rank_s,
       "this rank's index on its host: the CUDA device learner.device=cuda means (default "
       "$LOCAL_RANK, else 0)"},
      {"metrics-listen", &metrics_listen,
       "HOST:PORT for Prometheus GET /metrics over HTTP (optional; port 0 picks one)"},
      {"metrics-port-file", &metrics_port_file, "write the metrics port to this file (optional)"},
      {"help", &help, "show this help", /*is_switch=*/true},
  };
  TlsFiles tls;
  for (FlagSpec& f : TlsFlags(&tls)) flags.push_back(f);
  std::vector<std::string> overrides;
  absl::Status s = ParseFlags(argc, argv, flags, &overrides);
  if (s.ok() && !help.empty()) {
    std::cout << FlagUsage("rlpost-learner", flags)
              << "  key=value  override a run config key (docs/configuration.md)\n";
    return 0;
  }
  if (s.ok()) s = SetProcessTls(tls);
  int rank = 0, world = 0, master_port = 0, local_rank = 0;
  if (s.ok() && (!absl::SimpleAtoi(rank_s, &rank) || !absl::SimpleAtoi(master_port_s, &master_port) ||
                 !absl::SimpleAtoi(local_rank_s, &local_rank) || local_rank < 0 ||
                 (!world_s.empty() && !absl::SimpleAtoi(world_s, &world)))) {
    s = absl::InvalidArgumentError(
        "--rank, --world-size, --master-port and --local-rank must be integers (--local-rank >= 0)");
  }
  if (s.ok() && rank == 0 && listen.empty()) s = absl::InvalidArgumentError("--listen is required on rank 0");
  if (!s.ok()) {
    std::cerr << "rlpost-learner: " << s.message() << "\n" << FlagUsage("rlpost-learner", flags);
    return 2;
  }
  absl::StatusOr<RunConfig> config = LoadRunConfig(config_path, overrides);
  if (!config.ok()) {
    std::cerr << "rlpost-learner: " << config.status().message() << "\n";
    return 2;
  }
  if (world == 0) world = static_cast<int>(config->learner_world_size);
  SetLogRole("learner[" + std::to_string(rank) + "]");
  // The device first: a setting this build or host cannot honour is
  // reported before this rank joins the group.
  absl::StatusOr<c10::Device> device =
      OpenDevice("learner.device", config->learner_device, local_rank);
  if (!device.ok()) {
    std::cerr << "rlpost-learner: " << device.status().message() << "\n";
    return 2;
  }
  config->learner_device = device->str();  // "cuda" made concrete: "cuda:<local rank>"
  const bool nccl = config->learner_backend == "nccl" ||
                    (config->learner_backend == "auto" && device->is_cuda());
  std::unique_ptr<MetricsHttpServer> metrics;
  if (!metrics_listen.empty()) {
    auto started = StartMetricsEndpoint(metrics_listen, metrics_port_file, "rlpost-learner");
    if (!started.ok()) {
      std::cerr << "rlpost-learner: " << started.status().message() << "\n";
      return started.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
    }
    metrics = *std::move(started);
  }
  at::set_num_threads(static_cast<int>(config->learner_threads));

  std::unique_ptr<ProcessGroupHandle> group;
  if (world > 1) {
    GroupOptions go;
    go.rank = rank;
    go.world_size = world;
    go.master_addr = master_addr;
    go.master_port = master_port;
    go.rendezvous_timeout_seconds = static_cast<int>(config->learner_rendezvous_timeout_s);
    if (nccl) go.nccl_device = device->is_cuda() ? device->index() : 0;
    auto g = ProcessGroupHandle::Connect(go);
    if (!g.ok()) {
      std::cerr << "rlpost-learner: " << g.status().message() << "\n";
      return g.status().code() == absl::StatusCode::kFailedPrecondition ? 2 : 1;
    }
    group = std::move(*g);
    RLPOST_LOG(INFO) << "joined the learner group as rank " << rank << " of " << world << " ("
                     << (nccl ? "NCCL and Gloo" : "Gloo") << ", device " << device->str() << ")";
  }
  CharTokenizer tokenizer;
  auto trainer = Trainer::Create(*config, tokenizer.vocab_size(), group.get());
  if (!trainer.ok()) {
    std::cerr << "rlpost-learner: " << trainer.status().message() << "\n";
    return 1;
  }
  std::optional<ResumePoint> resumed;
  if (resume.empty() && config->run_resume) resume = config->CheckpointRoot();
  if (!resume.empty()) {
    absl::StatusOr<ResumePoint> point = (*trainer)->LoadCheckpoint(resume);
    if (!point.ok()) {
      std::cerr << "rlpost-learner: cannot resume: " << point.status().message() << "\n";
      return 1;
    }
    resumed = *point;
    RLPOST_LOG(INFO) << "resumed from " << point->directory << " at weight version "
                     << point->weight_version << " (" << point->optimizer_steps
                     << " optimizer steps)";
  }

  if (rank > 0) {
    // A follower serves no API, but with --listen it answers gRPC health
    // checks (Kubernetes probes every rank the same way).
    std::unique_ptr<ServerHost> health;
    if (!listen.empty()) {
      auto started = ServerHost::Start(listen, {}, port_file, "rlpost-learner");
      if (!started.ok()) {
        std::cerr << "rlpost-learner: " << started.status().message() << "\n";
        return 1;
      }
      health = *std::move(started);
    }
    // A follower blocks in collectives; on SIGTERM it simply leaves.
    std::thread([] {
      WaitForShutdown();
      std::_Exit(0);
    }).detach();
    s = RunFollower(trainer->get(), group.get(), *config);
    if (!s.ok()) {
      std::cerr << "rlpost-learner: rank " << rank << ": " << s.message() << "\n";
      return 1;
    }
    return 0;
  }

  LearnerServiceImpl service(trainer->get(), group.get(), *config,
                             resumed ? &*resumed : nullptr);
  auto host = ServerHost::Start(listen, {&service}, port_file, "rlpost-learner");
  if (!host.ok()) {
    std::cerr << "rlpost-learner: " << host.status().message() << "\n";
    return 1;
  }
  RLPOST_LOG(INFO) << "training " << (*trainer)->Describe() << " with " << world << " rank(s)";
  WaitForShutdown();
  (*host)->Shutdown();
  service.StopFollowers();
  if (metrics) metrics->Stop();
  return 0;
}
