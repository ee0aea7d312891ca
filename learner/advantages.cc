#include "learner/advantages.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace rlpost {
namespace {

// One row of a name table: an enum value and its name in configs.
template <typename E>
struct Named {
  E value;
  absl::string_view name;
};

constexpr Named<AdvantageEstimator> kEstimatorNames[] = {
    {AdvantageEstimator::kGrpo, "grpo"},
    {AdvantageEstimator::kDrGrpo, "dr_grpo"},
    {AdvantageEstimator::kRloo, "rloo"},
    {AdvantageEstimator::kReinforcePlusPlus, "reinforce_pp"},
    {AdvantageEstimator::kReinforcePlusPlusBaseline, "reinforce_pp_baseline"},
    {AdvantageEstimator::kGae, "gae"},
};

constexpr Named<KlEstimator> kKlNames[] = {
    {KlEstimator::kK1, "k1"}, {KlEstimator::kK2, "k2"}, {KlEstimator::kK3, "k3"}};

// Looks `name` up in a name table; the error lists every valid name so a
// typo in a config is fixed in one go.
template <typename E, size_t N>
absl::StatusOr<E> LookUp(const Named<E> (&table)[N], absl::string_view what,
                         absl::string_view name) {
  std::vector<absl::string_view> names;
  for (const Named<E>& row : table) {
    if (row.name == name) return row.value;
    names.push_back(row.name);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown ", what, " '", name,
                                                 "'; valid: ", absl::StrJoin(names, ", ")));
}

template <typename E, size_t N>
absl::string_view NameOf(const Named<E> (&table)[N], E value) {
  for (const Named<E>& row : table) {
    if (row.value == value) return row.name;
  }
  return "unknown";
}

// Both batches hold the same number of samples and each sample pair the same
// number of tokens. `a` and `b` name the elements, plural ("rewards").
template <typename A, typename B>
absl::Status CheckSameShape(const std::vector<std::vector<A>>& x, absl::string_view a,
                            const std::vector<std::vector<B>>& y, absl::string_view b) {
  if (x.size() != y.size()) {
    return absl::InvalidArgumentError(absl::StrCat("batch: ", x.size(), " sequences of ", a,
                                                   " but ", y.size(), " of ", b));
  }
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i].size() != y[i].size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sample ", i, ": ", x[i].size(), " ", a, " but ", y[i].size(), " ", b));
    }
  }
  return absl::OkStatus();
}

// Every element finite; `outer`/`inner` name the two indices in the error.
absl::Status CheckFinite(const std::vector<std::vector<double>>& x, absl::string_view outer,
                         absl::string_view inner, absl::string_view what) {
  for (size_t i = 0; i < x.size(); ++i) {
    for (size_t j = 0; j < x[i].size(); ++j) {
      if (!std::isfinite(x[i][j])) {
        return absl::InvalidArgumentError(
            absl::StrCat(outer, " ", i, ", ", inner, " ", j, ": ", what, " is ", x[i][j]));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckUnitInterval(absl::string_view name, double v) {
  if (!(v >= 0.0 && v <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat(name, " must be in [0, 1], got ", v));
  }
  return absl::OkStatus();
}

double Mean(const std::vector<double>& x) {
  double sum = 0.0;
  for (double v : x) sum += v;
  return sum / static_cast<double>(x.size());
}

bool AllEqual(const std::vector<double>& x) {
  return std::all_of(x.begin(), x.end(), [&](double v) { return v == x.front(); });
}

// (x - mean) / (population std + kStdEpsilon), in place; all zero when every
// value is equal, where rounding in the mean would otherwise leave
// (x - mean) / eps noise.
void Normalise(std::vector<double>& x) {
  if (x.empty()) return;
  if (AllEqual(x)) {
    std::fill(x.begin(), x.end(), 0.0);
    return;
  }
  const double mean = Mean(x);
  double sq = 0.0;
  for (double v : x) sq += (v - mean) * (v - mean);
  const double stddev = std::sqrt(sq / static_cast<double>(x.size()));
  for (double& v : x) v = (v - mean) / (stddev + kStdEpsilon);
}

// r - group mean, exactly zero for a uniform group (and a group of one).
std::vector<double> Centre(const std::vector<double>& rewards) {
  std::vector<double> out(rewards.size(), 0.0);
  if (rewards.empty() || AllEqual(rewards)) return out;
  const double mean = Mean(rewards);
  for (size_t i = 0; i < rewards.size(); ++i) out[i] = rewards[i] - mean;
  return out;
}

std::vector<double> Rloo(const std::vector<double>& rewards) {
  const size_t n = rewards.size();
  std::vector<double> out(n, 0.0);
  if (n < 2 || AllEqual(rewards)) return out;
  double sum = 0.0;
  for (double r : rewards) sum += r;
  for (size_t i = 0; i < n; ++i) {
    out[i] = rewards[i] - (sum - rewards[i]) / static_cast<double>(n - 1);
  }
  return out;
}

// Normalises every sample of the batch together (REINFORCE++), ignoring the
// groups; the shape is kept.
std::vector<std::vector<double>> BatchNormalise(std::vector<std::vector<double>> groups) {
  std::vector<double> flat;
  for (const auto& g : groups) flat.insert(flat.end(), g.begin(), g.end());
  Normalise(flat);
  size_t k = 0;
  for (auto& g : groups) {
    for (double& v : g) v = flat[k++];
  }
  return groups;
}

// GAE of one sequence (the value after its last token is 0).
std::vector<double> GaeOfSequence(const std::vector<double>& rewards,
                                  const std::vector<double>& values, double gamma,
                                  double lambda) {
  std::vector<double> adv(rewards.size(), 0.0);
  double next_value = 0.0;
  double next_adv = 0.0;
  for (size_t t = rewards.size(); t-- > 0;) {
    const double delta = rewards[t] + gamma * next_value - values[t];
    adv[t] = delta + gamma * lambda * next_adv;
    next_value = values[t];
    next_adv = adv[t];
  }
  return adv;
}

}  // namespace

absl::StatusOr<AdvantageEstimator> ParseAdvantageEstimator(absl::string_view name) {
  return LookUp(kEstimatorNames, "advantage estimator", name);
}

absl::string_view AdvantageEstimatorName(AdvantageEstimator estimator) {
  return NameOf(kEstimatorNames, estimator);
}

bool NeedsCritic(AdvantageEstimator estimator) { return estimator == AdvantageEstimator::kGae; }

absl::StatusOr<std::vector<std::vector<double>>> ComputeOutcomeAdvantages(
    AdvantageEstimator estimator, const std::vector<std::vector<double>>& rewards) {
  if (absl::Status s = CheckFinite(rewards, "group", "sample", "reward"); !s.ok()) return s;
  std::vector<std::vector<double>> out;
  out.reserve(rewards.size());
  switch (estimator) {
    case AdvantageEstimator::kGrpo:
      for (const auto& g : rewards) {
        out.push_back(g);
        Normalise(out.back());
      }
      return out;
    case AdvantageEstimator::kDrGrpo:
      for (const auto& g : rewards) out.push_back(Centre(g));
      return out;
    case AdvantageEstimator::kRloo:
      for (const auto& g : rewards) out.push_back(Rloo(g));
      return out;
    case AdvantageEstimator::kReinforcePlusPlus:
      return BatchNormalise(rewards);
    case AdvantageEstimator::kReinforcePlusPlusBaseline:
      // The centred values have mean 0 by construction, so normalising them
      // over the batch divides by their batch std.
      for (const auto& g : rewards) out.push_back(Centre(g));
      return BatchNormalise(std::move(out));
    case AdvantageEstimator::kGae:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("advantage estimator '", AdvantageEstimatorName(estimator),
                   "' needs per-token values from a critic; use ComputeGae"));
}

double LengthAdaptiveLambda(int64_t length, double alpha) {
  const double scale = alpha * static_cast<double>(length);
  if (!(scale > 1.0)) return 0.0;
  return std::clamp(1.0 - 1.0 / scale, 0.0, 1.0);
}

absl::StatusOr<GaeResult> ComputeGae(const std::vector<std::vector<double>>& token_rewards,
                                     const std::vector<std::vector<double>>& values,
                                     const GaeOptions& options) {
  if (absl::Status s = CheckUnitInterval("gamma", options.gamma); !s.ok()) return s;
  if (absl::Status s = CheckUnitInterval("lambda_policy", options.lambda_policy); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckUnitInterval("lambda_critic", options.lambda_critic); !s.ok()) {
    return s;
  }
  if (!(options.length_adaptive_alpha >= 0.0 && std::isfinite(options.length_adaptive_alpha))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "length_adaptive_alpha must be finite and >= 0, got ", options.length_adaptive_alpha));
  }
  if (absl::Status s = CheckSameShape(token_rewards, "rewards", values, "values"); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckFinite(token_rewards, "sample", "token", "reward"); !s.ok()) return s;
  if (absl::Status s = CheckFinite(values, "sample", "token", "value"); !s.ok()) return s;

  GaeResult result;
  result.advantages.reserve(values.size());
  result.returns.reserve(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const double lambda_policy =
        options.length_adaptive_alpha > 0.0
            ? LengthAdaptiveLambda(static_cast<int64_t>(values[i].size()),
                                   options.length_adaptive_alpha)
            : options.lambda_policy;
    result.advantages.push_back(
        GaeOfSequence(token_rewards[i], values[i], options.gamma, lambda_policy));
    std::vector<double> returns =
        lambda_policy == options.lambda_critic
            ? result.advantages.back()
            : GaeOfSequence(token_rewards[i], values[i], options.gamma, options.lambda_critic);
    for (size_t t = 0; t < returns.size(); ++t) returns[t] += values[i][t];
    result.returns.push_back(std::move(returns));
  }
  return result;
}

absl::StatusOr<std::vector<double>> TokenRewardsWithKlPenalty(
    double outcome_reward, const std::vector<double>& token_kl, double kl_coef) {
  if (token_kl.empty()) {
    return absl::InvalidArgumentError("empty response: no token to carry the outcome reward");
  }
  if (!std::isfinite(outcome_reward) || !std::isfinite(kl_coef)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "outcome reward and kl_coef must be finite, got ", outcome_reward, " and ", kl_coef));
  }
  std::vector<double> rewards(token_kl.size());
  for (size_t t = 0; t < token_kl.size(); ++t) {
    if (!std::isfinite(token_kl[t])) {
      return absl::InvalidArgumentError(absl::StrCat("token ", t, ": KL is ", token_kl[t]));
    }
    rewards[t] = -kl_coef * token_kl[t];
  }
  rewards.back() += outcome_reward;
  return rewards;
}

absl::StatusOr<std::vector<std::vector<double>>> WhitenAdvantages(
    const std::vector<std::vector<double>>& advantages,
    const std::vector<std::vector<uint8_t>>& masks) {
  if (absl::Status s = CheckSameShape(advantages, "advantages", masks, "mask entries"); !s.ok()) {
    return s;
  }
  std::vector<double> valid;
  for (size_t i = 0; i < advantages.size(); ++i) {
    for (size_t t = 0; t < advantages[i].size(); ++t) {
      if (masks[i][t] != 0) valid.push_back(advantages[i][t]);
    }
  }
  Normalise(valid);
  std::vector<std::vector<double>> out;
  out.reserve(advantages.size());
  size_t k = 0;
  for (size_t i = 0; i < advantages.size(); ++i) {
    out.emplace_back(advantages[i].size(), 0.0);
    for (size_t t = 0; t < advantages[i].size(); ++t) {
      if (masks[i][t] != 0) out[i][t] = valid[k++];
    }
  }
  return out;
}

absl::StatusOr<KlEstimator> ParseKlEstimator(absl::string_view name) {
  return LookUp(kKlNames, "KL estimator", name);
}

absl::string_view KlEstimatorName(KlEstimator estimator) { return NameOf(kKlNames, estimator); }

double KlEstimate(KlEstimator estimator, double logp, double logq) {
  const double lr = logq - logp;
  switch (estimator) {
    case KlEstimator::kK1:
      return logp - logq;
    case KlEstimator::kK2:
      return 0.5 * lr * lr;
    case KlEstimator::kK3:
      // expm1 keeps precision when p and q are close (lr near 0), where
      // exp(lr) - 1 would cancel; the clamp absorbs the last rounding.
      return std::max(0.0, std::expm1(lr) - lr);
  }
  return 0.0;
}

absl::StatusOr<std::vector<std::vector<double>>> TokenKl(
    KlEstimator estimator, const std::vector<std::vector<double>>& logp,
    const std::vector<std::vector<double>>& logq) {
  if (absl::Status s = CheckSameShape(logp, "policy logprobs", logq, "reference logprobs");
      !s.ok()) {
    return s;
  }
  std::vector<std::vector<double>> out(logp.size());
  for (size_t i = 0; i < logp.size(); ++i) {
    out[i].resize(logp[i].size());
    for (size_t t = 0; t < logp[i].size(); ++t) {
      out[i][t] = KlEstimate(estimator, logp[i][t], logq[i][t]);
    }
  }
  return out;
}

}  // namespace rlpost
