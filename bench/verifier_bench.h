#pragma once
// `rlpost-bench verifier`: the math checker's pairs/s on one core (MATH-500
// solutions against their gold answers, in-process CheckMathAnswer) and the
// code judge's programs/s on HumanEval canonical solutions, with the same
// programs run as plain python3 subprocesses in the same run for the sandbox
// overhead ratio.

#include <string>
#include <vector>

namespace rlpost::bench {

// Returns the process exit code. Prints a table, or one JSON object with
// --json; --quick measures fewer repetitions; --data-dir DIR overrides
// $RLPOST_DATA_DIR and <source>/../shared/data.
int RunVerifierBench(const std::vector<std::string>& args);

}  // namespace rlpost::bench
