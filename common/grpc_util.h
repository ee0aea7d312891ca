#pragma once
// The gRPC edge shared by every server and client: status conversion, server
// start-up (bind, health checking, reflection, port file), shutdown on
// SIGTERM/SIGINT, and channels.

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rlpost {

// The one place absl::Status becomes grpc::Status (same code, same message).
grpc::Status ToGrpcStatus(const absl::Status& status);
// And back, prefixing the message with `context` (e.g. "rollout 127.0.0.1:5").
absl::Status FromGrpcStatus(const grpc::Status& status, const std::string& context);

// A started gRPC server. Thread-safe.
class ServerHost {
 public:
  // Binds `listen` (HOST:PORT, port 0 picks a free port), registers the
  // services (not owned; they must outlive the host), enables health checking
  // and reflection, prints "listening on HOST:PORT" and writes the port to
  // `port_file` when not empty.
  static absl::StatusOr<std::unique_ptr<ServerHost>> Start(
      const std::string& listen, const std::vector<grpc::Service*>& services,
      const std::string& port_file, const std::string& role);

  int port() const { return port_; }
  std::string address() const { return address_; }
  // Stops accepting, lets in-flight calls finish (up to the deadline), joins.
  void Shutdown();

 private:
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string address_;
};

// Blocks SIGTERM and SIGINT in the calling thread (call first thing in main,
// before any thread starts) and starts a thread that waits for them.
void InstallShutdownSignals();
// Returns once a shutdown signal arrived or RequestShutdown() was called.
void WaitForShutdown();
void RequestShutdown();
bool ShutdownRequested();

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address);

// Parses "--name=value" / "--name value" style flags; unknown flags are an
// error that lists the known ones.
struct FlagSpec {
  std::string name;      // without dashes
  std::string* value;
  std::string help;
  bool is_switch = false;  // takes no value: present sets *value to "true"
};
absl::Status ParseFlags(int argc, char** argv, const std::vector<FlagSpec>& flags,
                        std::vector<std::string>* positional);
std::string FlagUsage(const std::string& program, const std::vector<FlagSpec>& flags);

}  // namespace rlpost
