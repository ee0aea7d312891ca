// rlpost: the local launcher. `rlpost train --config FILE [key=value ...]`
// runs a whole job on loopback; see `rlpost --help`.

#include <iostream>
#include <string>
#include <vector>

#include "cli/launcher.h"
#include "common/grpc_util.h"
#include "common/subprocess.h"

namespace {

const char kUsage[] =
    "usage: rlpost train [--config FILE] [key=value ...]\n"
    "\n"
    "Starts a verifier, the learner ranks, the rollout workers and the controller\n"
    "on 127.0.0.1, runs the job (SFT warm start, held-out eval, GRPO steps, eval,\n"
    "checkpoint) and stops every process at the end. key=value overrides any run\n"
    "config key (docs/configuration.md). Outputs: <run.output_dir>/<run.name>/\n"
    "{metrics.jsonl, summary.json, checkpoint/, logs/}.\n"
    "\n"
    "exit status: 0 the run finished; 1 it failed or a process could not start;\n"
    "2 bad arguments or config (nothing started); 130 interrupted.\n";

}  // namespace

int main(int argc, char** argv) {
  rlpost::InstallShutdownSignals();
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h" || arg == "help") {
      std::cout << kUsage;
      return 0;
    }
  }
  if (argc < 2 || std::string(argv[1]) != "train") {
    std::cerr << (argc < 2 ? "rlpost: missing command\n"
                           : "rlpost: unknown command '" + std::string(argv[1]) + "'\n")
              << kUsage;
    return rlpost::kLaunchUsage;
  }
  std::string config_path;
  const std::vector<rlpost::FlagSpec> flags = {
      {"config", &config_path, "run config YAML"},
  };
  std::vector<std::string> overrides;
  absl::Status s = rlpost::ParseFlags(argc - 1, argv + 1, flags, &overrides);
  if (!s.ok()) {
    std::cerr << "rlpost: " << s.message() << "\n" << kUsage;
    return rlpost::kLaunchUsage;
  }
  rlpost::Launcher launcher(rlpost::ExecutableDir(), &std::cout, &std::cerr);
  return launcher.Train(config_path, overrides);
}
