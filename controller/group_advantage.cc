#include "controller/group_advantage.h"

#include <cmath>

namespace rlpost {

GroupAdvantage ComputeGroupAdvantage(const std::vector<double>& rewards) {
  GroupAdvantage g;
  g.advantages.assign(rewards.size(), 0.0);
  if (rewards.empty()) {
    g.uniform = true;
    return g;
  }
  double sum = 0.0;
  for (double r : rewards) sum += r;
  g.mean = sum / static_cast<double>(rewards.size());
  g.uniform = true;
  for (double r : rewards) {
    if (r != rewards.front()) g.uniform = false;
  }
  if (g.uniform) return g;
  double sq = 0.0;
  for (double r : rewards) sq += (r - g.mean) * (r - g.mean);
  g.std = std::sqrt(sq / static_cast<double>(rewards.size()));
  for (size_t i = 0; i < rewards.size(); ++i) {
    g.advantages[i] = (rewards[i] - g.mean) / (g.std + kAdvantageEpsilon);
  }
  return g;
}

RejectionResult SelectGroups(const std::vector<GroupAdvantage>& groups, bool skip_uniform) {
  RejectionResult r;
  for (size_t i = 0; i < groups.size(); ++i) {
    if (groups[i].uniform) ++r.uniform_groups;
    if (skip_uniform && groups[i].uniform) continue;
    r.kept.push_back(static_cast<int64_t>(i));
  }
  return r;
}

}  // namespace rlpost
