#pragma once
// Sample lineage: every RL sample the controller asks for is recorded under
// <run_dir>/samples/ as JSON lines (samples-00000.jsonl, samples-00001.jsonl,
// ... rotated by size; a reopened log starts a new file and never rewrites
// an old one), and `rlpost audit` checks the records. docs/controller.md,
// "Lineage", lists the fields.
//
// Three record types:
//   issued: a group was requested: step, round, group, prompt_id, n, seed;
//   sample: one sample's outcome: its key (step, round, group, sample_index),
//           seed, weight-version segments, verifier version and verdict,
//           reward parts, whether it was used for training and at which step;
//   dropped: a group was cut off at its straggler deadline (its samples are
//           accounted for, not lost);
//   resume: the run restarted from the checkpoint after step S; records of
//           later steps written before this line belong to the lost attempt
//           and are superseded.
// No gRPC, no LibTorch.

#include <cstdint>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace rlpost {

class LineageLog {
 public:
  static constexpr int64_t kDefaultRotateBytes = 64ll << 20;

  // Creates `dir` if needed; continues after the highest-numbered file there.
  static absl::StatusOr<std::unique_ptr<LineageLog>> Open(const std::string& dir,
                                                          int64_t rotate_bytes = kDefaultRotateBytes);

  // One record, one line; starts the next file once this one reaches the
  // rotation size. Flushed at once (a crash loses at most the line being
  // written). Thread-safe.
  absl::Status Append(const nlohmann::ordered_json& record);

  const std::string& current_file() const { return path_; }

 private:
  LineageLog(std::string dir, int64_t rotate_bytes, int next_index);
  absl::Status OpenNext();

  std::mutex mu_;  // guards everything below
  std::string dir_;
  int64_t rotate_bytes_;
  int next_index_;
  std::string path_;
  std::ofstream out_;
  int64_t bytes_ = 0;
};

// The "segments" field: consecutive tokens produced by the same weight
// version, as [{"version": v, "tokens": n}, ...].
nlohmann::ordered_json VersionSegments(const std::vector<int64_t>& token_versions);

struct AuditReport {
  int64_t issued = 0;      // samples asked for (sum of n over issued groups)
  int64_t samples = 0;     // distinct samples recorded
  int64_t lost = 0;        // asked for, never recorded
  int64_t duplicated = 0;  // recorded more than once, or recorded without being asked for
  int64_t used = 0;        // recorded as used for training
  int64_t dropped = 0;     // asked for, in a group dropped as a straggler (not lost)
  // Used samples whose oldest token lagged the learner's version at the
  // training step by more than the run's bound (records with
  // "learner_version" and "max_staleness"), and the largest lag seen.
  int64_t stale = 0;
  int64_t staleness_max = 0;
  int64_t staleness_bound = -1;  // -1: no record carried a bound
  // The first few problems, one line each ("step 3 round 0 group 2 sample 5: lost").
  std::vector<std::string> problems;
  bool ok() const { return lost == 0 && duplicated == 0 && stale == 0; }
};

// Reads <run_dir>/samples/*.jsonl in file order. A line that is not a JSON
// object with the fields of its type is DATA_LOSS naming the file and line;
// a run without a samples directory is NOT_FOUND.
absl::StatusOr<AuditReport> AuditRun(const std::string& run_dir);

}  // namespace rlpost
