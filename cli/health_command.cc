#include "cli/health_command.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/rlctl.h"
#include "common/grpc_util.h"
#include "common/tls.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace rlpost {

std::string HealthUsage() {
  return "usage: rlctl health --addr HOST:PORT [--timeout SECONDS]\n"
         "                    [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]\n"
         "\n"
         "Asks an rlpost server whether it is serving (gRPC health checking,\n"
         "grpc.health.v1.Health/Check, the server as a whole) and prints its status.\n"
         "A probe for servers that require TLS (Kubernetes' native gRPC probes speak\n"
         "plaintext only). --addr defaults to $RLCTL_ADDR; --timeout to 5.\n"
         "\n"
         "exit status: 0 SERVING; 1 another status; 2 bad arguments; 3 no answer in\n"
         "time (nothing listening, or the TLS handshake failed).\n";
}

int RunHealthCommand(const std::vector<std::string>& args, const std::string& env_addr,
                     std::ostream& out, std::ostream& err) {
  std::string addr = env_addr, timeout_text = "5", help;
  TlsFiles tls;
  std::vector<FlagSpec> flags = {
      {"addr", &addr, "server address"},
      {"timeout", &timeout_text, "seconds to wait for the answer"},
      {"help", &help, "show this help", /*is_switch=*/true},
  };
  for (FlagSpec& f : TlsFlags(&tls)) flags.push_back(f);
  std::vector<std::string> argv_storage = {"rlctl health"};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_storage) argv.push_back(a.data());
  std::vector<std::string> positional;
  absl::Status s = ParseFlags(static_cast<int>(argv.size()), argv.data(), flags, &positional);
  if (s.ok() && !help.empty()) {
    out << HealthUsage();
    return kRlctlOk;
  }
  double timeout_s = 0;
  if (s.ok() && !positional.empty()) {
    s = absl::InvalidArgumentError(absl::StrCat("unexpected argument '", positional[0], "'"));
  }
  if (s.ok() && addr.empty()) {
    s = absl::InvalidArgumentError("no address: pass --addr HOST:PORT or set RLCTL_ADDR");
  }
  if (s.ok() && (!absl::SimpleAtod(timeout_text, &timeout_s) || !(timeout_s > 0))) {
    s = absl::InvalidArgumentError(absl::StrCat(
        "--timeout must be a positive number of seconds, got '", timeout_text, "'"));
  }
  if (s.ok()) s = SetProcessTls(tls);
  if (!s.ok()) {
    err << "rlctl health: " << s.message() << "\n" << HealthUsage();
    return kRlctlUsage;
  }
  auto stub = grpc::health::v1::Health::NewStub(MakeChannel(addr));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  context.set_wait_for_ready(true);  // ride out a server still starting, up to the deadline
  grpc::health::v1::HealthCheckRequest request;  // service "": the whole server
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) {
    const bool unreachable = status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                             status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    err << "rlctl health: " << addr << ": " << status.error_message() << "\n";
    return unreachable ? kRlctlUnreachable : kRlctlRpcError;
  }
  out << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()) << "\n";
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kRlctlOk
                                                                              : kRlctlRpcError;
}

}  // namespace rlpost
