#pragma once
// `rlctl health`: asks any rlpost server (controller, rollout worker,
// verifier, learner rank, reward host) whether it is serving, over the
// standard gRPC health-checking protocol, with the same TLS flags as the
// other commands. Meant for probes: a Kubernetes exec probe where the servers
// require TLS (native gRPC probes speak plaintext only), or a script waiting
// for a process to come up.

#include <ostream>
#include <string>
#include <vector>

namespace rlpost {

// Runs `rlctl health args...` (args excludes "health"). Prints the status
// (SERVING, NOT_SERVING, ...) and returns kRlctlOk only for SERVING;
// kRlctlRpcError for another status, kRlctlUnreachable when nothing answers
// in time (or the TLS handshake fails), kRlctlUsage for bad flags.
int RunHealthCommand(const std::vector<std::string>& args, const std::string& env_addr,
                     std::ostream& out, std::ostream& err);

std::string HealthUsage();

}  // namespace rlpost
