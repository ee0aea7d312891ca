// rlpost-verifier: serves VerifierService on --listen until SIGTERM/SIGINT.
//
// The launcher passes the run config to every process (--config PATH and
// key=value overrides); the verifier is stateless and reads only the net.*
// keys from it, when it joins a controller (--controller/--advertise).

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "common/bearer_token.h"
#include "common/grpc_util.h"
#include "common/membership.h"
#include "common/run_config.h"
#include "common/tls.h"
#include "common/logging.h"
#include "common/metrics_http_server.h"
#include "verifier/verifier_service.h"

namespace {

constexpr int kExitUsage = 2;

int UsageError(const std::string& message, const std::string& usage) {
  std::fprintf(stderr, "rlpost-verifier: %s\n%s", message.c_str(), usage.c_str());
  return kExitUsage;
}

// Parses a flag that must be an integer in [min, max]; empty keeps `*out`.
bool ParseIntFlag(const std::string& name, const std::string& text, int min, int max, int* out,
                  std::string* error) {
  if (text.empty()) return true;
  int v = 0;
  if (!absl::SimpleAtoi(text, &v) || v < min || v > max) {
    *error = "--" + name + " must be an integer in [" + std::to_string(min) + ", " +
             std::to_string(max) + "], got '" + text + "'";
    return false;
  }
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  rlpost::InstallShutdownSignals();
  rlpost::SetLogRole("verifier");

  std::string listen;
  std::string port_file;
  std::string deadline_ms;
  std::string max_concurrency;
  std::string max_queue;
  std::string cache_size;
  std::string metrics_listen;
  std::string math_workers;
  std::string metrics_port_file;
  std::string code_warm_sandboxes;
  std::string config;  // read only for net.* keys when joining a controller
  std::string controller, advertise, token_file;
  std::vector<rlpost::FlagSpec> flags = {
      {"listen", &listen, "HOST:PORT to serve on (required; port 0 picks a free one)"},
      {"port-file", &port_file, "write the bound port to this file (optional)"},
      {"deadline-ms", &deadline_ms,
       "batch deadline for requests that set none (default 5000)"},
      {"max-concurrency", &max_concurrency,
       "items judged at once (default: the number of CPU cores)"},
      {"max-queue", &max_queue,
       "items (or unary batches) that may wait for a judge thread; more are refused with "
       "RESOURCE_EXHAUSTED (default 1024)"},
      {"cache-size", &cache_size, "verdicts kept in the LRU result cache, 0 = off (default 65536)"},
      {"math-workers", &math_workers,
       "run math checks in N forked processes with the item's deadline as a hard limit "
       "(default 0: in-process, bounded by the checker's size budgets)"},
      {"metrics-listen", &metrics_listen,
       "HOST:PORT for Prometheus GET /metrics over HTTP (optional; port 0 picks one)"},
      {"metrics-port-file", &metrics_port_file, "write the metrics port to this file (optional)"},
      {"code-warm-sandboxes", &code_warm_sandboxes,
       "code sandboxes kept started ahead of the runs that use them, each used once; 0 = start "
       "every run's sandbox on demand (default 2, at most 64; see docs/verifier_code.md)"},
      {"config", &config, "run config (ignored: the verifier needs none)"},
  };
  flags.push_back({"controller", &controller,
                   "HOST:PORT of a running controller to join as a verifier (needs --advertise)"});
  flags.push_back({"advertise", &advertise, "HOST:PORT the controller reaches this verifier at"});
  flags.push_back({"token-file", &token_file, "the controller's bearer token, when it has one"});
  rlpost::TlsFiles tls;
  for (rlpost::FlagSpec& f : rlpost::TlsFlags(&tls)) flags.push_back(f);
  const std::string usage =
      rlpost::FlagUsage("rlpost-verifier", flags) + "  --help  print this help\n";

  // --help takes no value, so it is handled before the generic parser.
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::fputs(usage.c_str(), stdout);
      return 0;
    }
  }
  std::vector<std::string> positional;
  if (absl::Status s = rlpost::ParseFlags(argc, argv, flags, &positional); !s.ok()) {
    return UsageError(std::string(s.message()), usage);
  }
  if (absl::Status s = rlpost::SetProcessTls(tls); !s.ok()) {
    return UsageError(std::string(s.message()), usage);
  }
  for (const std::string& arg : positional) {
    if (arg.find('=') == std::string::npos || arg.front() == '=') {
      return UsageError("unexpected argument '" + arg + "' (only key=value overrides are accepted)",
                        usage);
    }
  }
  if (listen.empty()) return UsageError("--listen HOST:PORT is required", usage);
  if (!controller.empty() && advertise.empty()) {
    return UsageError("--controller needs --advertise HOST:PORT (this verifier's address as the "
                      "controller reaches it)",
                      usage);
  }

  rlpost::VerifierServiceImpl::Options options;
  if (!deadline_ms.empty()) {
    int ms = 0;
    if (!absl::SimpleAtoi(deadline_ms, &ms) || ms <= 0) {
      return UsageError("--deadline-ms must be a positive integer, got '" + deadline_ms + "'",
                        usage);
    }
    options.default_deadline = absl::Milliseconds(ms);
  }
  options.max_concurrency = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int cache_entries = static_cast<int>(options.cache_capacity);
  std::string error;
  if (!ParseIntFlag("max-concurrency", max_concurrency, 1, 4096, &options.max_concurrency,
                    &error) ||
      !ParseIntFlag("max-queue", max_queue, 0, 1 << 24, &options.max_queue, &error) ||
      !ParseIntFlag("cache-size", cache_size, 0, 1 << 26, &cache_entries, &error)) {
    return UsageError(error, usage);
  }
  options.cache_capacity = static_cast<size_t>(cache_entries);
  int math_worker_count = 0;
  int warm_sandboxes = -1;  // the code judge's default
  if (!ParseIntFlag("math-workers", math_workers, 0, 256, &math_worker_count, &error) ||
      !ParseIntFlag("code-warm-sandboxes", code_warm_sandboxes, 0, 64, &warm_sandboxes, &error)) {
    return UsageError(error, usage);
  }
  if (math_worker_count > 0) {
    // Forked before the service starts its judge threads.
    auto pool = rlpost::MathWorkerPool::Create(math_worker_count);
    if (!pool.ok()) {
      std::fprintf(stderr, "rlpost-verifier: --math-workers: %s\n",
                   std::string(pool.status().message()).c_str());
      return 1;
    }
    options.math_workers = std::shared_ptr<rlpost::MathWorkerPool>(*std::move(pool));
  }
  if (auto code = rlpost::CodeItemJudge::CreateDefault(warm_sandboxes); code.ok()) {
    options.code = std::shared_ptr<const rlpost::CodeItemJudge>(*std::move(code));
  } else {
    options.code_unavailable = std::string(code.status().message());
    RLPOST_LOG(WARNING) << "kind \"code\" unavailable: " << code.status().message();
  }
  const bool serves_code = options.code != nullptr;
  rlpost::VerifierServiceImpl service(options);

  std::unique_ptr<rlpost::MetricsHttpServer> metrics;
  if (!metrics_listen.empty()) {
    auto started = rlpost::StartMetricsEndpoint(metrics_listen, metrics_port_file,
                                                "rlpost-verifier",
                                                [&service] { return service.RenderMetrics(); });
    if (!started.ok()) {
      std::fprintf(stderr, "rlpost-verifier: %s\n",
                   std::string(started.status().message()).c_str());
      return started.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage : 1;
    }
    metrics = *std::move(started);
  }

  auto host = rlpost::ServerHost::Start(listen, {&service}, port_file, "rlpost-verifier");
  if (!host.ok()) {
    std::fprintf(stderr, "rlpost-verifier: %s\n", std::string(host.status().message()).c_str());
    return host.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage : 1;
  }
  RLPOST_LOG(INFO) << "verifier " << rlpost::kVerifierVersion << " serving kinds: math"
                   << (serves_code ? ", code" : "") << " (max-concurrency "
                   << options.max_concurrency << ", max-queue " << options.max_queue << ")";
  std::unique_ptr<rlpost::ControllerMembership> membership;
  if (!controller.empty()) {
    absl::StatusOr<rlpost::RunConfig> run_config = rlpost::LoadRunConfig(config, positional);
    std::string token;
    if (!token_file.empty()) {
      absl::StatusOr<std::string> t = rlpost::ReadTokenFile(token_file);
      if (!t.ok()) {
        (*host)->Shutdown();
        return UsageError(std::string(t.status().message()), usage);
      }
      token = *t;
    }
    if (!run_config.ok()) {
      (*host)->Shutdown();
      return UsageError(std::string(run_config.status().message()), usage);
    }
    auto joined = rlpost::ControllerMembership::Join(rlpost::ControllerMembership::Options::For(
        controller, advertise, "verifier", token, *run_config));
    if (!joined.ok()) {
      std::fprintf(stderr, "rlpost-verifier: cannot join: %s\n",
                   std::string(joined.status().message()).c_str());
      (*host)->Shutdown();
      return 1;
    }
    membership = *std::move(joined);
  }
  rlpost::WaitForShutdown();
  if (membership) membership->Stop();
  // Stop accepting and drain the calls in flight, then the metrics thread.
  (*host)->Shutdown();
  if (metrics) metrics->Stop();
  RLPOST_LOG(INFO) << "verifier stopped after " << service.items_verified() << " items";
  return 0;
}
