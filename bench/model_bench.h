#pragma once
// `rlpost-bench model`: prefill and decode throughput of the MoE policy and
// the grouped-expert MoE layer's efficiency against a dense matmul of the same
// active size, measured side by side in one run.

#include <string>
#include <vector>

namespace rlpost::bench {

// Returns the process exit code. Prints a table, or one JSON object with
// --json.
int RunModelBench(const std::vector<std::string>& args);

}  // namespace rlpost::bench
