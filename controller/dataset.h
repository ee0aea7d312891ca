#pragma once
// Datasets of problems for the controller: the built-in arithmetic generator
// or JSONL files in the formats users already have (GSM8K, MATH-500, or any
// file with a prompt and an answer per line). Pure functions; thread-safe.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/run_config.h"
#include "controller/arith_task.h"

namespace rlpost {

// Reads one problem per line of a JSONL file:
//   prompt    from the first of the fields `prompt`, `question`, `problem`;
//   answer    from `answer`; a GSM8K-style answer whose text ends in "#### N"
//             gives N as the answer and the text before it as the solution;
//   solution  from `solution` when present (it wins over a GSM8K solution);
//   id        from `id`, else "<file stem>-<line number>".
// Empty lines are skipped. A malformed line is kInvalidArgument
// "PATH line N: ..." naming the problem (bad JSON, a missing field). A file that
// cannot be read is kNotFound.
absl::StatusOr<std::vector<Problem>> LoadJsonlProblems(const std::string& path);

// The problems of one split of the run's task: the built-in generator
// (task.kind=arith, seeded by run.seed) or the JSONL file of that split.
absl::StatusOr<std::vector<Problem>> LoadProblems(const RunConfig& config, Split split);

}  // namespace rlpost
