#include "common/grpc_util.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/support/server_interceptor.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/metrics_registry.h"
#include "common/tls.h"

namespace rlpost {
namespace {

const char* CodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {
      "OK",        "CANCELLED",           "UNKNOWN",           "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND",   "ALREADY_EXISTS",    "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",  "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",        "UNAVAILABLE",       "DATA_LOSS",
      "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < static_cast<int>(sizeof(kNames) / sizeof(kNames[0])) ? kNames[i]
                                                                            : "UNKNOWN";
}

// Counts every RPC a server finishes, by service, method and status code,
// and times it, into DefaultMetrics() (names as go-grpc-prometheus has them).
class HandledRpcCounter final : public grpc::experimental::Interceptor {
 public:
  explicit HandledRpcCounter(grpc::experimental::ServerRpcInfo* info)
      : start_(std::chrono::steady_clock::now()) {
    const std::string full = info->method() == nullptr ? "" : info->method();  // "/pkg.Svc/Method"
    const size_t slash = full.rfind('/');
    service_ = slash == std::string::npos || slash == 0 ? full : full.substr(1, slash - 1);
    method_ = slash == std::string::npos ? full : full.substr(slash + 1);
  }
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      MetricsRegistry& m = DefaultMetrics();
      m.Add("rlpost_grpc_server_handled_total",
            {{"grpc_service", service_}, {"grpc_method", method_},
             {"grpc_code", CodeName(status.error_code())}});
      m.Observe("rlpost_grpc_server_handling_seconds",
                {{"grpc_service", service_}, {"grpc_method", method_}},
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    }
    methods->Proceed();
  }

 private:
  std::chrono::steady_clock::time_point start_;
  std::string service_, method_;
};

class HandledRpcCounterFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new HandledRpcCounter(info);
  }
};

void DeclareRpcMetrics() {
  MetricsRegistry& m = DefaultMetrics();
  m.Declare("rlpost_grpc_server_handled_total", MetricsRegistry::Type::kCounter,
            "RPCs completed on this server, by service, method and status code.");
  m.Declare("rlpost_grpc_server_handling_seconds", MetricsRegistry::Type::kHistogram,
            "Time from an RPC's start to its status, by service and method.",
            {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60});
}

}  // namespace


grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status, const std::string& context) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(context, ": ", status.error_message()));
}

absl::StatusOr<std::unique_ptr<ServerHost>> ServerHost::Start(
    const std::string& listen, const std::vector<grpc::Service*>& services,
    const std::string& port_file, const std::string& role) {
  size_t colon = listen.rfind(':');
  if (listen.empty() || colon == std::string::npos || colon + 1 == listen.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen must be HOST:PORT (port 0 picks a free one), got '",
                     listen, "'"));
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, ServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(256 << 20);
  builder.SetMaxSendMessageSize(256 << 20);
  for (grpc::Service* s : services) builder.RegisterService(s);
  DeclareRpcMetrics();
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<HandledRpcCounterFactory>());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  auto host = std::unique_ptr<ServerHost>(new ServerHost());
  host->server_ = builder.BuildAndStart();
  if (host->server_ == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot bind ", listen,
                                               " (address in use or invalid)"));
  }
  host->server_->GetHealthCheckService()->SetServingStatus(true);
  host->port_ = port;
  host->address_ = absl::StrCat(listen.substr(0, colon), ":", port);
  std::printf("%s listening on %s\n", role.c_str(), host->address_.c_str());
  std::fflush(stdout);
  if (!port_file.empty()) {
    // Write then rename, so a reader never sees a half-written number.
    std::string tmp = port_file + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << port << "\n";
      if (!out) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot write --port-file '", port_file, "'"));
      }
    }
    if (std::rename(tmp.c_str(), port_file.c_str()) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot write --port-file '", port_file, "'"));
    }
  }
  return host;
}

void ServerHost::Shutdown() {
  if (server_ == nullptr) return;
  server_->GetHealthCheckService()->SetServingStatus(false);
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server_->Wait();
  server_.reset();
}

namespace {

std::mutex g_shutdown_mu;
std::condition_variable g_shutdown_cv;
bool g_shutdown = false;

}  // namespace

namespace {

int g_signal_pipe[2] = {-1, -1};

void OnShutdownSignal(int sig) {
  // Async-signal-safe: hand the signal number to the watcher thread.
  unsigned char b = static_cast<unsigned char>(sig);
  ssize_t ignored = ::write(g_signal_pipe[1], &b, 1);
  (void)ignored;
}

}  // namespace

void InstallShutdownSignals() {
  // A handler rather than sigwait: libraries (LibTorch, Gloo) start threads
  // before main, and a process-directed signal may land on any of them.
  if (::pipe(g_signal_pipe) != 0) return;
  struct sigaction sa {};
  sa.sa_handler = OnShutdownSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::thread([] {
    unsigned char sig = 0;
    while (::read(g_signal_pipe[0], &sig, 1) < 0 && errno == EINTR) {
    }
    RLPOST_LOG(INFO) << "received signal " << static_cast<int>(sig) << ", shutting down";
    RequestShutdown();
  }).detach();
}

void RequestShutdown() {
  std::lock_guard<std::mutex> lock(g_shutdown_mu);
  g_shutdown = true;
  g_shutdown_cv.notify_all();
}

bool ShutdownRequested() {
  std::lock_guard<std::mutex> lock(g_shutdown_mu);
  return g_shutdown;
}

void WaitForShutdown() {
  std::unique_lock<std::mutex> lock(g_shutdown_mu);
  g_shutdown_cv.wait(lock, [] { return g_shutdown; });
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  // Reconnect quickly: peers on loopback come and go during tests.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  // "dns:///name:port" names every address the name resolves to (a headless
  // Kubernetes Service: one per pod): spread calls over all of them, and
  // follow the set as pods come and go.
  if (absl::StartsWith(address, "dns:///")) args.SetLoadBalancingPolicyName("round_robin");
  return grpc::CreateCustomChannel(address, ChannelCredentials(), args);
}

absl::Status ParseFlags(int argc, char** argv, const std::vector<FlagSpec>& flags,
                        std::vector<std::string>* positional) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (!absl::StartsWith(arg, "--")) {
      if (positional == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
      }
      positional->push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& f : flags) {
      if (f.name == name) spec = &f;
    }
    if (spec == nullptr) {
      std::string known;
      for (const FlagSpec& f : flags) absl::StrAppend(&known, " --", f.name);
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag '--", name, "'; known flags:", known));
    }
    if (spec->is_switch) {
      if (has_value) {
        return absl::InvalidArgumentError(absl::StrCat("flag '--", name, "' takes no value"));
      }
      *spec->value = "true";
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(absl::StrCat("flag '--", name, "' needs a value"));
      }
      value = argv[++i];
    }
    *spec->value = value;
  }
  return absl::OkStatus();
}

std::string FlagUsage(const std::string& program, const std::vector<FlagSpec>& flags) {
  std::string out = absl::StrCat("usage: ", program, " [flags]\n");
  for (const FlagSpec& f : flags) absl::StrAppend(&out, "  --", f.name, "  ", f.help, "\n");
  return out;
}

}  // namespace rlpost
