#include "rollout/spec_sampling.h"

#include <algorithm>

#include "rollout/sampler.h"

namespace rlpost {

int SampleDraftToken(const std::vector<double>& q, uint64_t seed, int64_t position) {
  return SampleFrom(q, TokenUniform(seed, position, RandomPurpose::kDraft));
}

DraftVerifyResult VerifyDraft(const DraftVerifyInput& input) {
  const std::vector<std::vector<double>>& target = *input.target;
  const size_t k = input.draft_tokens.size();
  const bool certain = input.draft_probs == nullptr || input.draft_probs->empty();
  DraftVerifyResult out;
  for (size_t j = 0; j < k; ++j) {
    const std::vector<double>& p = target[j];
    const int d = input.draft_tokens[j];
    const int64_t pos = input.first_position + static_cast<int64_t>(j);
    if (certain) {
      const int x = SampleFrom(p, TokenUniform(input.seed, pos, RandomPurpose::kSample));
      out.tokens.push_back(x);
      out.probs.push_back(p[x]);
      if (x != d) return out;
      ++out.accepted;
      continue;
    }
    const std::vector<double>& q = (*input.draft_probs)[j];
    const double pd = p[d], qd = q[d];
    // q(d) > 0 for a token sampled from q; guard anyway (accept iff p covers it).
    const bool accept = qd <= 0.0 ? pd > 0.0
                                  : TokenUniform(input.seed, pos, RandomPurpose::kAccept) * qd < pd;
    if (accept) {
      out.tokens.push_back(d);
      out.probs.push_back(pd);
      ++out.accepted;
      continue;
    }
    std::vector<double> residual(p.size());
    double total = 0.0;
    for (size_t i = 0; i < p.size(); ++i) {
      residual[i] = std::max(0.0, p[i] - q[i]);
      total += residual[i];
    }
    // total == 0 means p == q, where rejection has probability 0; rounding
    // can still get here, and then p itself is the right distribution.
    const double u = TokenUniform(input.seed, pos, RandomPurpose::kResidual);
    const int x = total > 0.0 ? SampleFrom(residual, u, total) : SampleFrom(p, u);
    out.tokens.push_back(x);
    out.probs.push_back(p[x]);
    return out;
  }
  const std::vector<double>& p = target[k];
  const int64_t pos = input.first_position + static_cast<int64_t>(k);
  const int x = SampleFrom(p, TokenUniform(input.seed, pos, RandomPurpose::kSample));
  out.tokens.push_back(x);
  out.probs.push_back(p[x]);
  return out;
}

}  // namespace rlpost
