// rlpost-controller: serves the control API and, given the addresses of the
// rollout workers, the verifier and the learner, runs one synchronous GRPO job
// on them. With only --listen it serves the control API idle until SIGTERM.
//
// Exit status: 0 the run finished; 1 it failed (the error is on stderr);
// 2 bad flags or config; 143 stopped by SIGTERM/SIGINT during the run.

#include <atomic>
#include <cstdio>
#include <iostream>
#include <optional>
#include <thread>

#include "absl/strings/str_split.h"
#include "common/bearer_token.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "common/tls.h"
#include "common/metrics_http_server.h"
#include "common/run_config.h"
#include "controller/control_service.h"
#include "controller/run.h"
#include "controller/run_control.h"

namespace rlpost {
namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitSignal = 143;

struct JobResult {
  absl::Status status;
  bool interrupted = false;  // a shutdown signal cancelled it
};

// Runs one job to its end, or until a shutdown signal cancels it; prints the
// outcome on stderr.
JobResult RunJob(const RunConfig& config, const PeerAddresses& peers, RunControl* control) {
  TrainingRun run(config, peers, control);
  JobResult result;
  std::atomic<bool> done{false};
  std::thread runner([&] {
    result.status = run.Run().status();
    done.store(true);
  });
  while (!done.load() && !ShutdownRequested()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  result.interrupted = !done.load();
  if (result.interrupted) {
    RLPOST_LOG(INFO) << "shutdown signal: cancelling the run";
    run.Cancel();
  }
  runner.join();
  std::cout << std::flush;
  if (result.interrupted) {
    std::cerr << "rlpost-controller: " << result.status.message() << "\n";
  } else if (!result.status.ok()) {
    std::cerr << "rlpost-controller: run failed: " << result.status.message() << "\n";
  }
  return result;
}

int Main(int argc, char** argv) {
  InstallShutdownSignals();
  SetLogRole("controller");
  std::string listen, port_file, config_path, rollout, verifier, learner, token_file, serve;
  std::string metrics_listen, metrics_port_file;
  std::vector<FlagSpec> flags = {
      {"listen", &listen, "HOST:PORT to serve the control API on (port 0: any free port)"},
      {"port-file", &port_file, "write the chosen port to this file"},
      {"config", &config_path, "run config YAML (key=value arguments override it)"},
      {"serve", &serve,
       "serve the control API and run submitted runs even when --rollout/--verifier/--learner "
       "are given; they become the submitted runs' default peers",
       /*is_switch=*/true},
      {"rollout", &rollout, "comma-separated HOST:PORT of the rollout workers"},
      {"verifier", &verifier, "HOST:PORT of the verifier"},
      {"learner", &learner, "HOST:PORT of learner rank 0"},
      {"token-file", &token_file,
       "file holding a bearer token that pause, resume, stop, checkpoint and worker "
       "registration must carry"},
      {"metrics-listen", &metrics_listen,
       "HOST:PORT for Prometheus GET /metrics over HTTP (optional; port 0 picks one)"},
      {"metrics-port-file", &metrics_port_file, "write the metrics port to this file (optional)"},
  };
  TlsFiles tls;
  for (FlagSpec& f : TlsFlags(&tls)) flags.push_back(f);
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      std::cout << FlagUsage("rlpost-controller", flags)
                << "  key=value  override a run config key (docs/configuration.md)\n"
                << "With --rollout, --verifier and --learner it runs the job at once and exits\n"
                << "0 when it finished, 1 when it failed, 2 on bad flags or config, 143 when\n"
                << "stopped by a signal. With only --listen it serves the control API idle and\n"
                << "runs each run `rlctl run submit` sends, one at a time, until SIGTERM.\n"
                << "With --serve as well as the peers it serves idle too, and a submitted run\n"
                << "that names no peers uses these (a Kubernetes deployment).\n";
      return 0;
    }
  }
  std::vector<std::string> overrides;
  absl::Status s = ParseFlags(argc, argv, flags, &overrides);
  if (s.ok()) s = SetProcessTls(tls);
  if (!s.ok()) {
    std::cerr << "rlpost-controller: " << s.message() << "\n" << FlagUsage("rlpost-controller", flags);
    return kExitUsage;
  }
  if (listen.empty()) {
    std::cerr << "rlpost-controller: --listen HOST:PORT is required\n";
    return kExitUsage;
  }
  const bool has_job = !rollout.empty() || !verifier.empty() || !learner.empty();
  if (has_job && (rollout.empty() || verifier.empty() || learner.empty())) {
    std::cerr << "rlpost-controller: a job needs all of --rollout, --verifier and --learner\n";
    return kExitUsage;
  }
  absl::StatusOr<RunConfig> config = LoadRunConfig(config_path, overrides);
  if (!config.ok()) {
    std::cerr << "rlpost-controller: " << config.status().message() << "\n";
    return kExitUsage;
  }
  PeerAddresses peers;
  if (has_job) {
    peers.rollouts = absl::StrSplit(rollout, ',', absl::SkipEmpty());
    peers.verifier = verifier;
    peers.learner = learner;
  }

  std::string token;
  if (!token_file.empty()) {
    absl::StatusOr<std::string> t = ReadTokenFile(token_file);
    if (!t.ok()) {
      std::cerr << "rlpost-controller: " << t.status().message() << "\n";
      return kExitUsage;
    }
    token = *t;
  }
  RunControl control;
  {
    // The resolved config for `rlctl config show` (every key, defaults too).
    absl::StatusOr<Config> raw = Config::Load(RunConfigSchema(), config_path, overrides);
    if (raw.ok()) control.SetConfigYaml(raw->ToYaml());
  }
  std::unique_ptr<MetricsHttpServer> metrics;
  if (!metrics_listen.empty()) {
    auto started = StartMetricsEndpoint(metrics_listen, metrics_port_file, "controller");
    if (!started.ok()) {
      std::cerr << "rlpost-controller: " << started.status().message() << "\n";
      return started.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage
                                                                           : kExitFailed;
    }
    metrics = *std::move(started);
  }
  ControlServiceImpl service(&control, token);
  absl::StatusOr<std::unique_ptr<ServerHost>> host =
      ServerHost::Start(listen, {&service}, port_file, "controller");
  if (!host.ok()) {
    std::cerr << "rlpost-controller: " << host.status().message() << "\n";
    return kExitFailed;
  }
  service.set_default_peers(peers);
  auto finish = [&](int code) {
    (*host)->Shutdown();
    if (metrics) metrics->Stop();
    std::cout << std::flush;
    return code;
  };
  if (has_job && serve.empty()) {
    const JobResult r = RunJob(*config, peers, &control);
    return finish(r.interrupted ? kExitSignal : r.status.ok() ? 0 : kExitFailed);
  }
  // No job on the command line: serve the control API and run what
  // `rlctl run submit` sends, one run at a time, until SIGTERM.
  while (true) {
    std::optional<v1::SubmitRunRequest> job;
    while (!ShutdownRequested() && !(job = control.TakeSubmitted())) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!job) return finish(0);
    // SubmitRun checked the config already.
    absl::StatusOr<Config> raw =
        Config::FromYaml(RunConfigSchema(), job->config_yaml(), "the submitted config");
    for (const std::string& o : job->overrides()) {
      if (raw.ok()) (void)raw->ApplyOverride(o);
    }
    absl::StatusOr<RunConfig> submitted =
        raw.ok() ? ParseRunConfig(*raw) : absl::StatusOr<RunConfig>(raw.status());
    if (!submitted.ok()) {
      std::cerr << "rlpost-controller: submitted run: " << submitted.status().message() << "\n";
      continue;
    }
    control.SetConfigYaml(raw->ToYaml());
    PeerAddresses job_peers;
    job_peers.rollouts.assign(job->rollouts().begin(), job->rollouts().end());
    job_peers.verifier = job->verifier();
    job_peers.learner = job->learner();
    const JobResult r = RunJob(*submitted, job_peers, &control);
    if (r.interrupted) return finish(kExitSignal);
  }
}

}  // namespace
}  // namespace rlpost

int main(int argc, char** argv) { return rlpost::Main(argc, argv); }
