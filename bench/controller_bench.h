#pragma once
// `rlpost-bench controller`: (1) samples per second through the controller's
// run loop (generate -> verify -> reward -> advantages -> batch -> lineage)
// against in-process fake rollout, verifier and learner services, so the
// figure is the controller's own cost; (2) steps per hour of the built-in RL
// job in async against sync mode, both run side by side by `rlpost train`
// with generation and training on separate CPUs, and the held-out accuracy of
// each.

#include <string>
#include <vector>

namespace rlpost::bench {

// Returns the process exit code. Prints a table, or one JSON object with
// --json.
int RunControllerBench(const std::vector<std::string>& args);

}  // namespace rlpost::bench
