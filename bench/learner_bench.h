#pragma once
// `rlpost-bench learner`: training tokens/s of a PPO step and, interleaved in
// the same run, the bare forward + backward + AdamW time of the same model on
// the same packed micro-batches (step_overhead_ratio); and the padding
// fraction of the packed layout on a variable-length batch.

#include <string>
#include <vector>

namespace rlpost::bench {

// Returns the process exit code. Prints a table, or one JSON object with
// --json.
int RunLearnerBench(const std::vector<std::string>& args);

}  // namespace rlpost::bench
