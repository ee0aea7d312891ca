// rlpost-verifier: serves VerifierService on --listen until SIGTERM/SIGINT.
//
// The launcher passes the run config to every process (--config PATH and
// key=value overrides); the verifier is stateless and takes nothing from it,
// so both are accepted and ignored.

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "verifier/verifier_service.h"

namespace {

constexpr int kExitUsage = 2;

int UsageError(const std::string& message, const std::string& usage) {
  std::fprintf(stderr, "rlpost-verifier: %s\n%s", message.c_str(), usage.c_str());
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  rlpost::InstallShutdownSignals();
  rlpost::SetLogRole("verifier");

  std::string listen;
  std::string port_file;
  std::string deadline_ms;
  std::string config;  // accepted and ignored, see the file comment
  const std::vector<rlpost::FlagSpec> flags = {
      {"listen", &listen, "HOST:PORT to serve on (required; port 0 picks a free one)"},
      {"port-file", &port_file, "write the bound port to this file (optional)"},
      {"deadline-ms", &deadline_ms,
       "batch deadline for requests that set none (default 5000)"},
      {"config", &config, "run config (ignored: the verifier needs none)"},
  };
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
  for (const std::string& arg : positional) {
    if (arg.find('=') == std::string::npos || arg.front() == '=') {
      return UsageError("unexpected argument '" + arg + "' (only key=value overrides are accepted)",
                        usage);
    }
  }
  if (listen.empty()) return UsageError("--listen HOST:PORT is required", usage);

  rlpost::VerifierServiceImpl::Options options;
  if (!deadline_ms.empty()) {
    int ms = 0;
    if (!absl::SimpleAtoi(deadline_ms, &ms) || ms <= 0) {
      return UsageError("--deadline-ms must be a positive integer, got '" + deadline_ms + "'",
                        usage);
    }
    options.default_deadline = absl::Milliseconds(ms);
  }
  rlpost::VerifierServiceImpl service(options);

  auto host = rlpost::ServerHost::Start(listen, {&service}, port_file, "rlpost-verifier");
  if (!host.ok()) {
    std::fprintf(stderr, "rlpost-verifier: %s\n", std::string(host.status().message()).c_str());
    return host.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage : 1;
  }
  RLPOST_LOG(INFO) << "verifier " << rlpost::kVerifierVersion << " serving kinds: math";
  rlpost::WaitForShutdown();
  (*host)->Shutdown();
  RLPOST_LOG(INFO) << "verifier stopped after " << service.items_verified() << " items";
  return 0;
}
