// A stand-in for rlpost-rollout / rlpost-verifier / rlpost-learner (chosen by
// the name it is run under) serving the in-process fakes of
// controller/testing/fake_peers.h, so the launcher can be tested end to end
// without LibTorch. Accepts the launcher's flags; ignores the run config.
//
// Environment: FAKE_ROLLOUT_MODE=mixed|fail|hang; FAKE_EXIT_ROLE=<binary name>
// makes that role exit with status 3 at start. Prints the CPUs it may run on
// ("cpus: 0,1") so tests can check the launcher's pinning.

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "common/subprocess.h"
#include "common/grpc_util.h"
#include "controller/testing/fake_peers.h"

int main(int argc, char** argv) {
  rlpost::InstallShutdownSignals();
  std::string self = argv[0];
  const std::string role = self.substr(self.rfind('/') + 1);
  std::string listen, port_file, rank = "0";
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--listen") == 0) listen = argv[i + 1];
    if (std::strcmp(argv[i], "--port-file") == 0) port_file = argv[i + 1];
    if (std::strcmp(argv[i], "--rank") == 0) rank = argv[i + 1];
  }
  const char* exit_role = std::getenv("FAKE_EXIT_ROLE");
  if (exit_role != nullptr && role == exit_role) {
    std::cerr << role << ": failing at start as asked by FAKE_EXIT_ROLE\n";
    return 3;
  }
  std::cerr << role << " cpus: " << absl::StrJoin(rlpost::AllowedCpus(), ",") << std::endl;
  if (role == "rlpost-learner" && rank != "0") {  // a follower rank serves nothing
    rlpost::WaitForShutdown();
    return 0;
  }
  const char* mode_env = std::getenv("FAKE_ROLLOUT_MODE");
  const std::string mode = mode_env == nullptr ? "mixed" : mode_env;
  using Mode = rlpost::testing::FakeRollout::Mode;
  rlpost::testing::FakeRollout rollout(mode == "fail"   ? Mode::kFailGenerate
                                       : mode == "hang" ? Mode::kHang
                                                        : Mode::kMixed);
  rlpost::testing::FakeVerifier verifier;
  rlpost::testing::FakeLearner learner;
  grpc::Service* service = &rollout;
  if (absl::EndsWith(role, "verifier")) service = &verifier;
  if (absl::EndsWith(role, "learner")) service = &learner;
  auto host = rlpost::ServerHost::Start(listen, {service}, port_file, role);
  if (!host.ok()) {
    std::cerr << role << ": " << host.status().message() << "\n";
    return 1;
  }
  rlpost::WaitForShutdown();
  (*host)->Shutdown();
  return 0;
}
