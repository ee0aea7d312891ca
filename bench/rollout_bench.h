#pragma once
// `rlpost-bench rollout`: rollout-engine throughput, plain against each
// drafter (n-gram, MTP head, separate draft model; fixed and adaptive draft
// length) at batch 1, 8 and 32 on the built-in policy after a short SFT
// (realistic acceptance) and on the same policy freshly initialised, all
// measured interleaved in one run; plus the engine's overhead over its model
// forward calls.

#include <string>
#include <vector>

namespace rlpost::bench {

// Returns the process exit code. Prints a table, or one JSON object with
// --json.
int RunRolloutBench(const std::vector<std::string>& args);

}  // namespace rlpost::bench
