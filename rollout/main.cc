// rlpost-rollout: a rollout worker serving RolloutService.
#include <ATen/Parallel.h>

#include <cstdio>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/retry.h"
#include "common/bearer_token.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "common/membership.h"
#include "common/tls.h"
#include "common/metrics_http_server.h"
#include "common/metrics_registry.h"
#include "common/run_config.h"
#include "model/char_tokenizer.h"
#include "rollout/engine.h"
#include "rollout/rollout_service.h"
#include "rlpost/v1/control.grpc.pb.h"

namespace {

// The engine's counters and gauges at scrape time.
std::string RenderEngineMetrics(const rlpost::EngineStats& st) {
  using T = rlpost::MetricsRegistry::Type;
  rlpost::MetricsRegistry m;
  auto gauge = [&](const char* name, const char* help, double v) {
    m.Declare(name, T::kGauge, help);
    m.Set(name, {}, v);
  };
  auto counter = [&](const char* name, const char* help, double v) {
    m.Declare(name, T::kCounter, help);
    m.Add(name, {}, v);
  };
  gauge("rlpost_rollout_weight_version", "Policy weight version loaded.",
        static_cast<double>(st.weight_version));
  counter("rlpost_rollout_tokens_generated_total", "Tokens emitted.",
          static_cast<double>(st.tokens_generated));
  counter("rlpost_rollout_samples_finished_total", "Samples finished.",
          static_cast<double>(st.samples_finished));
  gauge("rlpost_rollout_running", "Samples in the running batch.", static_cast<double>(st.running));
  gauge("rlpost_rollout_waiting", "Samples queued for the batch (queue depth).",
        static_cast<double>(st.waiting));
  counter("rlpost_rollout_drafted_tokens_total", "Speculative draft tokens proposed.",
          static_cast<double>(st.drafted_tokens));
  counter("rlpost_rollout_accepted_tokens_total", "Speculative draft tokens accepted.",
          static_cast<double>(st.accepted_tokens));
  gauge("rlpost_rollout_spec_acceptance", "Accepted / drafted tokens since start (0: none drafted).",
        st.drafted_tokens > 0 ? static_cast<double>(st.accepted_tokens) / st.drafted_tokens : 0.0);
  gauge("rlpost_rollout_mean_draft_length", "Mean draft length per decode step.",
        st.mean_draft_length);
  counter("rlpost_rollout_preemptions_total", "Samples preempted for KV space.",
          static_cast<double>(st.preemptions));
  gauge("rlpost_rollout_kv_blocks_free", "Free paged-KV blocks.",
        static_cast<double>(st.kv_blocks_free));
  gauge("rlpost_rollout_kv_blocks_total", "Paged-KV blocks.", static_cast<double>(st.kv_blocks_total));
  counter("rlpost_rollout_forward_seconds_total", "Seconds inside model forwards.",
          st.forward_seconds);
  return m.Render();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace rlpost;
  InstallShutdownSignals();
  SetLogRole("rollout");
  std::string listen, port_file, config_path, controller, advertise, token_file, help;
  std::string metrics_listen, metrics_port_file;
  std::vector<FlagSpec> flags = {
      {"listen", &listen, "HOST:PORT to serve on (port 0 picks a free port)"},
      {"port-file", &port_file, "write the bound port to this file"},
      {"controller", &controller,
       "HOST:PORT of a running controller to join: it sends the current weights, then "
       "requests (needs --advertise)"},
      {"advertise", &advertise, "HOST:PORT the controller reaches this worker at"},
      {"token-file", &token_file, "the controller's bearer token, when it has one"},
      {"config", &config_path, "run config YAML (model shape, threads); key=value overrides follow"},
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
    std::cout << FlagUsage("rlpost-rollout", flags)
              << "  key=value  override a run config key (docs/configuration.md)\n";
    return 0;
  }
  if (s.ok()) s = SetProcessTls(tls);
  if (s.ok() && !controller.empty() && advertise.empty()) {
    s = absl::InvalidArgumentError("--controller needs --advertise HOST:PORT (this worker's "
                                   "address as the controller reaches it)");
  }
  if (!s.ok() || listen.empty()) {
    std::cerr << "rlpost-rollout: " << (s.ok() ? "--listen is required" : s.message()) << "\n"
              << FlagUsage("rlpost-rollout", flags);
    return 2;
  }
  absl::StatusOr<RunConfig> config = LoadRunConfig(config_path, overrides);
  if (!config.ok()) {
    std::cerr << "rlpost-rollout: " << config.status().message() << "\n";
    return 2;
  }
  at::set_num_threads(static_cast<int>(config->rollout_threads));
  CharTokenizer tokenizer;
  EngineOptions options;
  options.max_batch = config->rollout_max_batch;
  options.kv_block_size = config->rollout_kv_block_size;
  options.kv_blocks = config->rollout_kv_blocks;
  options.speculation.drafter = *ParseDrafterKind(config->rollout_drafter);
  options.speculation.max_draft_tokens = static_cast<int>(config->rollout_max_draft_tokens);
  options.speculation.adaptive = config->rollout_adaptive;
  options.device = config->rollout_device;
  absl::StatusOr<std::unique_ptr<RolloutEngine>> engine = RolloutEngine::Create(
      ModelConfig::FromShape(config->model, tokenizer.vocab_size()), options);
  if (!engine.ok()) {
    std::cerr << "rlpost-rollout: " << engine.status().message() << "\n";
    // A device the build or the machine does not have is a setting to fix.
    return engine.status().code() == absl::StatusCode::kFailedPrecondition ? 2 : 1;
  }
  RolloutServiceImpl service(engine->get());
  if (!controller.empty()) service.RequireWeightsBeforeServing();
  std::unique_ptr<MetricsHttpServer> metrics;
  if (!metrics_listen.empty()) {
    RolloutEngine* e = engine->get();
    auto started = StartMetricsEndpoint(metrics_listen, metrics_port_file, "rlpost-rollout",
                                        [e] { return RenderEngineMetrics(e->Stats()); });
    if (!started.ok()) {
      std::cerr << "rlpost-rollout: " << started.status().message() << "\n";
      return started.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
    }
    metrics = *std::move(started);
  }
  auto host = ServerHost::Start(listen, {&service}, port_file, "rlpost-rollout");
  if (!host.ok()) {
    std::cerr << "rlpost-rollout: " << host.status().message() << "\n";
    return 1;
  }
  RLPOST_LOG(INFO) << "serving " << (*engine)->Describe() << " on " << options.device
                   << " at weight version "
                   << (*engine)->weight_version() << ", drafter " << config->rollout_drafter;
  std::string token;
  if (!token_file.empty()) {
    absl::StatusOr<std::string> t = ReadTokenFile(token_file);
    if (!t.ok()) {
      std::cerr << "rlpost-rollout: " << t.status().message() << "\n";
      (*host)->Shutdown();
      return 2;
    }
    token = *t;
  }
  std::unique_ptr<ControllerMembership> membership;
  if (!controller.empty()) {
    // Join a running job: the controller pushes the current weights before
    // its next step, then sends requests; heartbeats keep it informed.
    ControllerMembership::Options m =
        ControllerMembership::Options::For(controller, advertise, "rollout", token, *config);
    RolloutEngine* e = engine->get();
    m.weight_version = [e] { return e->weight_version(); };
    absl::StatusOr<std::unique_ptr<ControllerMembership>> joined =
        ControllerMembership::Join(std::move(m));
    if (!joined.ok()) {
      std::cerr << "rlpost-rollout: cannot join: " << joined.status().message() << "\n";
      (*host)->Shutdown();
      return 1;
    }
    membership = *std::move(joined);
  }
  WaitForShutdown();
  if (membership) membership->Stop();
  (*host)->Shutdown();
  if (metrics) metrics->Stop();
  return 0;
}
