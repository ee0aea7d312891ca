#pragma once
// Advantage estimators and KL estimators of the learner's algorithm menu: the
// outcome-reward family (GRPO, Dr.GRPO, RLOO, REINFORCE++ with and without a
// group baseline), per-token GAE for PPO with a critic (with VAPO's decoupled
// and length-adaptive lambda), advantage whitening, and the k1/k2/k3
// estimators of KL(policy || reference). Formulas, conventions and references:
// docs/algorithms.md.
//
// Plain C++ over std::vector<double>: no LibTorch, no gRPC, so the controller
// (outcome advantages) and the learner (GAE, KL) can share it. Batches are
// indexed [sample][token] or, for outcome rewards, [group][sample]; every
// function validates shapes and returns INVALID_ARGUMENT naming the offending
// sample. All functions are pure and thread-safe.

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rlpost {

// Added to every standard deviation we divide by, so a near-uniform group or
// batch cannot blow up. Same value as the controller's GRPO advantages.
inline constexpr double kStdEpsilon = 1e-6;

// ---------------------------------------------------------------------------
// Estimator names.

enum class AdvantageEstimator {
  kGrpo,                       // "grpo": (r - group mean) / (group std + eps)
  kDrGrpo,                     // "dr_grpo": r - group mean
  kRloo,                       // "rloo": r - mean of the group's other samples
  kReinforcePlusPlus,          // "reinforce_pp": batch-normalised reward
  kReinforcePlusPlusBaseline,  // "reinforce_pp_baseline": group mean, then batch std
  kGae,                        // "gae": per-token GAE with a critic (ComputeGae)
};

// "grpo", "dr_grpo", "rloo", "reinforce_pp", "reinforce_pp_baseline" or
// "gae"; anything else is INVALID_ARGUMENT listing the valid names.
absl::StatusOr<AdvantageEstimator> ParseAdvantageEstimator(absl::string_view name);
absl::string_view AdvantageEstimatorName(AdvantageEstimator estimator);

// Whether the estimator needs per-token values from a critic (only kGae);
// the others take one scalar reward per sample.
bool NeedsCritic(AdvantageEstimator estimator);

// ---------------------------------------------------------------------------
// Outcome-reward estimators.

// One advantage per sample, to be broadcast over the sample's response tokens.
// `rewards[g][i]` is the reward of sample i of group g (the samples of one
// prompt); the result has the same shape. Standard deviations are population
// ones (divide by n). Conventions shared by all estimators: a group whose
// rewards are all equal gets all-zero advantages from the group-relative
// estimators, and so does a group of one sample; an empty group stays empty.
// kReinforcePlusPlus is the exception: it normalises over the whole batch, so
// a sample's advantage does not depend on its group.
//
// INVALID_ARGUMENT for a NaN or infinite reward (naming group and sample) and
// for kGae, which needs ComputeGae.
absl::StatusOr<std::vector<std::vector<double>>> ComputeOutcomeAdvantages(
    AdvantageEstimator estimator, const std::vector<std::vector<double>>& rewards);

// ---------------------------------------------------------------------------
// Per-token GAE (PPO with a critic, VAPO).

struct GaeOptions {
  double gamma = 1.0;
  // Lambda of the policy advantages.
  double lambda_policy = 0.95;
  // Lambda of the value targets. VAPO decouples the two: 1.0 here keeps the
  // critic's targets unbiased (Monte Carlo returns) while lambda_policy < 1
  // lowers the variance of the policy gradient. Set both equal for classic GAE.
  double lambda_critic = 1.0;
  // VAPO's length-adaptive lambda: when > 0, each sample's policy lambda is
  // LengthAdaptiveLambda(its length, alpha) and lambda_policy is ignored.
  // 0 turns it off. VAPO uses 0.05.
  double length_adaptive_alpha = 0.0;
};

struct GaeResult {
  std::vector<std::vector<double>> advantages;  // [sample][token], lambda_policy
  std::vector<std::vector<double>> returns;     // value targets, lambda_critic
};

// GAE over a batch of response sequences, each an episode that ends after its
// last token (the value after it is 0):
//   delta_t = r_t + gamma * V_{t+1} - V_t
//   A_t     = delta_t + gamma * lambda * A_{t+1}
// advantages use lambda_policy (or the length-adaptive lambda); returns are
// A_t + V_t with A computed under lambda_critic. `token_rewards[i][t]` is
// usually zero except on the last token, minus a KL penalty per token (see
// TokenRewardsWithKlPenalty); `values[i][t]` is the critic's estimate at token t.
//
// INVALID_ARGUMENT when the batch sizes or a sample's lengths differ (naming
// the sample and both lengths), for a NaN or infinite reward or value (naming
// sample and token), and for gamma, lambda_policy or lambda_critic outside
// [0, 1] or a negative or non-finite length_adaptive_alpha (naming the option).
absl::StatusOr<GaeResult> ComputeGae(const std::vector<std::vector<double>>& token_rewards,
                                     const std::vector<std::vector<double>>& values,
                                     const GaeOptions& options);

// VAPO's length-adaptive policy lambda, 1 - 1 / (alpha * length), clamped to
// [0, 1]: long responses get a lambda near 1 so the outcome reward still
// reaches their first tokens. alpha * length <= 1 gives 0.
double LengthAdaptiveLambda(int64_t length, double alpha);

// Per-token rewards of one response for GAE: -kl_coef * token_kl[t] on every
// token, plus `outcome_reward` on the last. INVALID_ARGUMENT for an empty
// response (the outcome reward would be lost) or a non-finite input.
absl::StatusOr<std::vector<double>> TokenRewardsWithKlPenalty(
    double outcome_reward, const std::vector<double>& token_kl, double kl_coef);

// Whitens advantages over all valid tokens of a batch: (A - mean) / (std +
// kStdEpsilon) with the population mean and std of the tokens whose mask is
// non-zero; masked tokens come back as 0. A batch whose valid tokens are all
// equal (or that has none) comes back all zero. INVALID_ARGUMENT when the
// batch sizes or a sample's lengths differ, naming the sample.
absl::StatusOr<std::vector<std::vector<double>>> WhitenAdvantages(
    const std::vector<std::vector<double>>& advantages,
    const std::vector<std::vector<uint8_t>>& masks);

// ---------------------------------------------------------------------------
// KL estimators.

// Per-token estimators of KL(p || q) for a token sampled from the policy p,
// with q the frozen reference and lr = log q - log p:
//   k1 = -lr                 unbiased, high variance, can be negative
//   k2 = lr^2 / 2            biased (exact to second order), non-negative
//   k3 = exp(lr) - 1 - lr    unbiased, non-negative, low variance near p = q
enum class KlEstimator { kK1, kK2, kK3 };

// "k1", "k2" or "k3"; anything else is INVALID_ARGUMENT listing them.
absl::StatusOr<KlEstimator> ParseKlEstimator(absl::string_view name);
absl::string_view KlEstimatorName(KlEstimator estimator);

// One token: `logp` under the policy, `logq` under the reference.
double KlEstimate(KlEstimator estimator, double logp, double logq);

// Every token of a batch, [sample][token]. INVALID_ARGUMENT when the batch
// sizes or a sample's lengths differ, naming the sample and both lengths.
absl::StatusOr<std::vector<std::vector<double>>> TokenKl(
    KlEstimator estimator, const std::vector<std::vector<double>>& logp,
    const std::vector<std::vector<double>>& logq);

}  // namespace rlpost
