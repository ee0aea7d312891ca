#pragma once
// GRPO group advantages and the rejection sampling that goes with them.
// Pure functions; thread-safe.

#include <cstdint>
#include <vector>

namespace rlpost {

// Added to the standard deviation so a near-uniform group cannot blow up.
inline constexpr double kAdvantageEpsilon = 1e-6;

struct GroupAdvantage {
  // advantages[i] = (rewards[i] - mean) / (std + kAdvantageEpsilon), with the
  // population standard deviation; all zero for a uniform group.
  std::vector<double> advantages;
  double mean = 0.0;
  double std = 0.0;
  // Every reward equal: the group carries no learning signal.
  bool uniform = false;
};

// Advantages of one group of samples of the same prompt. An empty group is
// uniform.
GroupAdvantage ComputeGroupAdvantage(const std::vector<double>& rewards);

// Which groups of a step go to the learner.
struct RejectionResult {
  std::vector<int64_t> kept;  // indices into the step's groups, in order
  int64_t uniform_groups = 0;
};

// Keeps every group, or, when `skip_uniform` is set, only those that are not
// uniform (rejection sampling).
RejectionResult SelectGroups(const std::vector<GroupAdvantage>& groups, bool skip_uniform);

}  // namespace rlpost
