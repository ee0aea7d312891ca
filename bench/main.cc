// rlpost-bench SUBCOMMAND [flags]: benchmarks that print ratios measured side
// by side in one run (the machines they run on are shared and noisy).
#include <cstdio>
#include <string>
#include <vector>

#include "bench/controller_bench.h"
#include "bench/learner_bench.h"
#include "bench/model_bench.h"
#include "bench/rollout_bench.h"
#include "bench/verifier_bench.h"

namespace {

constexpr char kUsage[] =
    "usage: rlpost-bench SUBCOMMAND [--json] [--quick] [--data-dir DIR]\n"
    "subcommands:\n"
    "  model   prefill/decode tokens/s of the MoE policy (batch 1, 8, 32) for the\n"
    "          built-in config and a ~100M-parameter CPU config, and moe_efficiency:\n"
    "          the MoE layer's FLOP rate over a dense matmul of the same active size\n"
    "  verifier   math pairs/s and the code sandbox's overhead over plain runs\n"
    "  rollout    engine throughput, plain against each drafter, fixed and adaptive\n"
    "  learner    PPO-step tokens/s against the bare forward+backward+AdamW of the same\n"
    "             packed micro-batches (step_overhead_ratio), and padding_fraction\n"
    "  controller samples/s through the run loop with fake services, and the built-in\n"
    "             job's steps per hour in async against sync mode (async_speedup)\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string sub = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (sub == "model") return rlpost::bench::RunModelBench(args);
  if (sub == "verifier") return rlpost::bench::RunVerifierBench(args);
  if (sub == "rollout") return rlpost::bench::RunRolloutBench(args);
  if (sub == "learner") return rlpost::bench::RunLearnerBench(args);
  if (sub == "controller") return rlpost::bench::RunControllerBench(args);
  std::fprintf(stderr, "rlpost-bench: unknown subcommand '%s'\n%s", sub.c_str(), kUsage);
  return 2;
}
