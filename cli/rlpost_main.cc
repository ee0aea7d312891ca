// rlpost: the local launcher. `rlpost train --config FILE [key=value ...]`
// runs a whole job on loopback; see `rlpost --help`.

#include <iostream>
#include <string>
#include <vector>

#include "cli/launcher.h"
#include "controller/lineage.h"
#include "common/grpc_util.h"
#include "common/subprocess.h"

namespace {

const char kUsage[] =
    "usage: rlpost train [--config FILE] [key=value ...]\n"
    "       rlpost audit RUN_DIR\n"
    "\n"
    "Starts a verifier, the learner ranks, the rollout workers and the controller\n"
    "on 127.0.0.1, runs the job (SFT warm start, held-out eval, GRPO steps, eval,\n"
    "checkpoint) and stops every process at the end. key=value overrides any run\n"
    "config key (docs/configuration.md). Outputs: <run.output_dir>/<run.name>/\n"
    "{metrics.jsonl, summary.json, checkpoint/, logs/}.\n"
    "\n"
    "exit status: 0 the run finished; 1 it failed or a process could not start;\n"
    "2 bad arguments or config (nothing started); 130 interrupted.\n"
    "\n"
    "`rlpost audit RUN_DIR` checks the run's sample records (RUN_DIR/samples/):\n"
    "every sample asked for recorded exactly once, and no sample trained more\n"
    "weight versions behind the learner than the run's rl.max_staleness. It prints\n"
    "`samples: N, lost: L, duplicated: D`, then up to 20 problems.\n"
    "exit status: 0 nothing lost, duplicated or too stale; 1 something was; 2 no records or\n"
    "unreadable records (the message names the file and line).\n";

int Audit(const std::string& run_dir) {
  absl::StatusOr<rlpost::AuditReport> report = rlpost::AuditRun(run_dir);
  if (!report.ok()) {
    std::cerr << "rlpost audit: " << report.status().message() << "\n";
    return 2;
  }
  std::cout << "samples: " << report->samples << ", lost: " << report->lost
            << ", duplicated: " << report->duplicated << "\n";
  std::cout << "issued: " << report->issued << ", used for training: " << report->used
            << ", dropped (stragglers, partial at run end): " << report->dropped << "\n";
  if (report->staleness_bound >= 0) {
    std::cout << "staleness: max " << report->staleness_max << " (bound "
              << report->staleness_bound << "), over the bound: " << report->stale << "\n";
  }
  for (const std::string& p : report->problems) std::cout << "  " << p << "\n";
  return report->ok() ? 0 : 1;
}

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
  if (argc >= 2 && std::string(argv[1]) == "audit") {
    if (argc != 3) {
      std::cerr << "rlpost audit: give one run directory (runs/<name>)\n" << kUsage;
      return rlpost::kLaunchUsage;
    }
    return Audit(argv[2]);
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
