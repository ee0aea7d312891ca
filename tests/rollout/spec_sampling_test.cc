#include "rollout/spec_sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "rollout/sampler.h"

namespace rlpost {
namespace {

using Rows = std::vector<std::vector<double>>;

constexpr int64_t kPosition = 7;  // absolute position of the verified token

// 0.999 quantile of the chi-square distribution: exact to 3 decimals up to
// 30 degrees of freedom, Wilson-Hilferty beyond (at most 0.2% above exact).
double ChiSquare999(int df) {
  static const double kTable[] = {
      10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322, 26.124, 27.877, 29.588,
      31.264, 32.909, 34.528, 36.123, 37.697, 39.252, 40.790, 42.312, 43.820, 45.315,
      46.797, 48.268, 49.728, 51.179, 52.620, 54.052, 55.476, 56.892, 58.301, 59.703};
  if (df <= 30) return kTable[df - 1];
  const double z = 3.090232;  // standard normal 0.999 quantile
  const double c = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - c + z * std::sqrt(c), 3);
}

// A total-variation distance that the empirical distribution of n draws over
// `support` cells exceeds with probability at most 1e-3
// (Bretagnolle-Huber-Carol: P(TV >= t) <= 2^K exp(-2 n t^2)).
double TvBound999(int64_t n, int support) {
  return std::sqrt((support * std::log(2.0) + std::log(1000.0)) / (2.0 * n));
}

// Checks that `counts` are draws from p: no draw where p is 0, chi-square
// (cells expected below 5 pooled) below its 0.999 quantile, total variation
// below TvBound999.
void ExpectDistributedAs(const std::vector<int64_t>& counts, const std::vector<double>& p,
                         const std::string& what) {
  SCOPED_TRACE(what);
  ASSERT_EQ(counts.size(), p.size());
  int64_t n = 0;
  for (int64_t c : counts) n += c;
  ASSERT_GT(n, 0);
  double chi2 = 0.0, tv = 0.0, pooled_expected = 0.0;
  int64_t pooled_count = 0;
  int cells = 0, support = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0.0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " has probability 0";
      continue;
    }
    ++support;
    tv += std::abs(static_cast<double>(counts[i]) / n - p[i]);
    const double expected = p[i] * n;
    if (expected < 5.0) {
      pooled_expected += expected;
      pooled_count += counts[i];
      continue;
    }
    chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
    ++cells;
  }
  if (pooled_expected > 0.0) {
    chi2 += (pooled_count - pooled_expected) * (pooled_count - pooled_expected) /
            pooled_expected;
    ++cells;
  }
  tv /= 2.0;
  if (cells >= 2) {
    EXPECT_LT(chi2, ChiSquare999(cells - 1)) << "n = " << n;
  }
  EXPECT_LT(tv, TvBound999(n, support)) << "n = " << n;
}

// Acceptance count of n Bernoulli(a) trials: exact at a = 0 or 1, otherwise
// within 4.5 standard deviations.
void ExpectRate(int64_t hits, int64_t n, double a, const std::string& what) {
  SCOPED_TRACE(what);
  if (a <= 0.0) {
    EXPECT_EQ(hits, 0);
  } else if (a >= 1.0) {
    EXPECT_EQ(hits, n);
  } else {
    EXPECT_NEAR(static_cast<double>(hits) / n, a, 4.5 * std::sqrt(a * (1 - a) / n));
  }
}

double Uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// A random distribution over `vocab` tokens, zero at `zeros`.
std::vector<double> RandomDistribution(std::mt19937_64& rng, int vocab,
                                       const std::vector<int>& zeros = {}) {
  std::vector<double> p(static_cast<size_t>(vocab));
  for (double& x : p) x = std::exp(3.0 * Uniform01(rng));
  for (int z : zeros) p[static_cast<size_t>(z)] = 0.0;
  double sum = 0.0;
  for (double x : p) sum += x;
  for (double& x : p) x /= sum;
  return p;
}

double Overlap(const std::vector<double>& p, const std::vector<double>& q) {
  double a = 0.0;
  for (size_t i = 0; i < p.size(); ++i) a += std::min(p[i], q[i]);
  return a;
}

DraftVerifyResult Verify(const Rows& target, std::vector<int> drafts, const Rows& draft_probs,
                         uint64_t seed, int64_t first_position) {
  DraftVerifyInput input;
  input.target = &target;
  input.draft_tokens = std::move(drafts);
  input.draft_probs = &draft_probs;
  input.seed = seed;
  input.first_position = first_position;
  return VerifyDraft(input);
}

struct SinglePositionStats {
  std::vector<int64_t> first;  // first emitted token
  std::vector<int64_t> bonus;  // bonus token after an acceptance
  int64_t accepted = 0;
  int64_t inconsistent = 0;  // results that break the DraftVerifyResult contract
  int64_t differs_from_plain = 0;  // certain drafts: first token != plain decoding
};

// VerifyDraft with one draft over seeds first_seed..first_seed+n-1. The
// draft is sampled from q (probabilistic drafts) or, when q is null, is
// `certain_draft`.
SinglePositionStats RunSinglePosition(const std::vector<double>& p,
                                      const std::vector<double>& bonus_row,
                                      const std::vector<double>* q, int certain_draft,
                                      uint64_t first_seed, int64_t n) {
  const Rows target = {p, bonus_row};
  const Rows draft_probs = q != nullptr ? Rows{*q} : Rows{};
  SinglePositionStats s;
  s.first.assign(p.size(), 0);
  s.bonus.assign(p.size(), 0);
  for (int64_t trial = 0; trial < n; ++trial) {
    const uint64_t seed = first_seed + static_cast<uint64_t>(trial);
    const int d = q != nullptr ? SampleDraftToken(*q, seed, kPosition) : certain_draft;
    const DraftVerifyResult r = Verify(target, {d}, draft_probs, seed, kPosition);
    if (r.accepted < 0 || r.accepted > 1 || r.tokens.size() != static_cast<size_t>(r.accepted) + 1 ||
        r.probs.size() != r.tokens.size() || (r.accepted == 1 && r.tokens[0] != d) ||
        r.probs[0] != p[r.tokens[0]] ||
        (r.accepted == 1 && r.probs[1] != bonus_row[r.tokens[1]])) {
      ++s.inconsistent;
      continue;
    }
    ++s.first[r.tokens[0]];
    if (r.accepted == 1) {
      ++s.accepted;
      ++s.bonus[r.tokens[1]];
    }
    if (q == nullptr &&
        r.tokens[0] != SampleFrom(p, TokenUniform(seed, kPosition, RandomPurpose::kSample))) {
      ++s.differs_from_plain;
    }
  }
  return s;
}

// The whole contract for probabilistic drafts at one position. Checks that
// share a test take disjoint seed ranges (`first_seed`), so their verdicts
// are independent.
void CheckProbDraft(const std::vector<double>& p, const std::vector<double>& q,
                    uint64_t first_seed, int64_t n, const std::string& what) {
  SCOPED_TRACE(what);
  std::mt19937_64 rng(99);
  const std::vector<double> bonus_row = RandomDistribution(rng, static_cast<int>(p.size()));
  const SinglePositionStats s = RunSinglePosition(p, bonus_row, &q, -1, first_seed, n);
  EXPECT_EQ(s.inconsistent, 0);
  ExpectDistributedAs(s.first, p, "first token ~ p");
  ExpectRate(s.accepted, n, Overlap(p, q), "acceptance = sum min(p, q)");
  if (s.accepted > 0) ExpectDistributedAs(s.bonus, bonus_row, "bonus token ~ next row");
}

void CheckCertainDraft(const std::vector<double>& p, int d, uint64_t first_seed, int64_t n,
                       const std::string& what) {
  SCOPED_TRACE(what);
  std::mt19937_64 rng(98);
  const std::vector<double> bonus_row = RandomDistribution(rng, static_cast<int>(p.size()));
  const SinglePositionStats s = RunSinglePosition(p, bonus_row, nullptr, d, first_seed, n);
  EXPECT_EQ(s.inconsistent, 0);
  EXPECT_EQ(s.differs_from_plain, 0);
  ExpectDistributedAs(s.first, p, "first token ~ p");
  ExpectRate(s.accepted, n, p[static_cast<size_t>(d)], "acceptance = p(d)");
  if (s.accepted > 0) ExpectDistributedAs(s.bonus, bonus_row, "bonus token ~ next row");
}

constexpr int64_t kTrials = 200000;

TEST(SpecSamplingTest, RandomTargetAndDraftEmitTarget) {
  std::mt19937_64 rng(1);
  for (int vocab : {2, 5, 8}) {
    const std::vector<double> p = RandomDistribution(rng, vocab);
    const std::vector<double> q = RandomDistribution(rng, vocab);
    CheckProbDraft(p, q, static_cast<uint64_t>(vocab) << 32, kTrials,
                   "vocab " + std::to_string(vocab));
  }
}

TEST(SpecSamplingTest, DraftEqualToTargetIsAlwaysAccepted) {
  std::mt19937_64 rng(2);
  const std::vector<double> p = RandomDistribution(rng, 6, {4});
  CheckProbDraft(p, p, 0, kTrials, "q == p");
}

TEST(SpecSamplingTest, DisjointSupportsAreNeverAccepted) {
  std::mt19937_64 rng(3);
  const std::vector<double> p = RandomDistribution(rng, 8, {4, 5, 6, 7});
  const std::vector<double> q = RandomDistribution(rng, 8, {0, 1, 2, 3});
  ASSERT_EQ(Overlap(p, q), 0.0);
  CheckProbDraft(p, q, 0, kTrials, "disjoint");
}

TEST(SpecSamplingTest, DraftMissingTargetTokensStillEmitsTarget) {
  std::mt19937_64 rng(4);
  // q is 0 at 0 and 3 where p > 0, and puts mass on 5 where p is 0.
  const std::vector<double> p = RandomDistribution(rng, 6, {5});
  const std::vector<double> q = RandomDistribution(rng, 6, {0, 3});
  CheckProbDraft(p, q, 0, kTrials, "q = 0 where p > 0");
}

TEST(SpecSamplingTest, OneHotDraftDistribution) {
  std::mt19937_64 rng(5);
  const std::vector<double> p = RandomDistribution(rng, 6);
  std::vector<double> q(6, 0.0);
  q[2] = 1.0;
  CheckProbDraft(p, q, 0, kTrials, "one-hot q");
}

TEST(SpecSamplingTest, CertainDraftsEmitTargetAndMatchPlainDecoding) {
  std::mt19937_64 rng(6);
  const std::vector<double> p = RandomDistribution(rng, 6, {3});
  const int argmax = static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin());
  const int argmin_nonzero = argmax == 0 ? 1 : 0;
  CheckCertainDraft(p, argmax, 0, kTrials, "draft = argmax");
  CheckCertainDraft(p, argmin_nonzero, 1ull << 32, kTrials / 2, "draft = another token");
  CheckCertainDraft(p, 3, 2ull << 32, kTrials / 2, "draft with p(d) = 0");
}

TEST(SpecSamplingTest, MaskedTargetTokensAreNeverEmitted) {
  const std::vector<float> logits = {1.2f, -0.3f, 0.8f, 2.1f, -1.5f, 0.0f, 1.9f, -0.7f, 0.4f, 1.0f};
  const int vocab = static_cast<int>(logits.size());
  std::vector<SamplingOptions> cases(4);
  cases[0].temperature = 0.7;
  cases[1].temperature = 1.3;
  cases[1].top_k = 4;
  cases[2].temperature = 1.0;
  cases[2].top_p = 0.8;
  cases[3].temperature = 0.9;
  cases[3].top_k = 6;
  cases[3].top_p = 0.9;
  std::mt19937_64 rng(7);
  for (size_t c = 0; c < cases.size(); ++c) {
    const std::vector<double> p = SamplingDistribution(logits.data(), vocab, cases[c]);
    const int masked = static_cast<int>(std::count(p.begin(), p.end(), 0.0));
    if (c > 0) {
      ASSERT_GT(masked, 0) << "case " << c << " masks nothing";
    }
    // The draft puts mass everywhere, masked tokens included.
    const std::vector<double> q = RandomDistribution(rng, vocab);
    const std::string name = "case " + std::to_string(c);
    const uint64_t first_seed = static_cast<uint64_t>(c) << 40;
    CheckProbDraft(p, q, first_seed, kTrials / 2, name + ", drafts from q");
    // Token 4 has the lowest logit: masked by every top-k / top-p case.
    CheckCertainDraft(p, 4, first_seed + (1ull << 32), kTrials / 4, name + ", certain draft 4");
    CheckCertainDraft(p, 6, first_seed + (2ull << 32), kTrials / 4, name + ", certain draft 6");
  }
}

TEST(SpecSamplingTest, GreedyAcceptsExactlyTheArgmaxPrefix) {
  const std::vector<float> l0 = {0.1f, 2.0f, 1.9f, -3.0f};
  const std::vector<float> l1 = {3.0f, 2.0f, 1.0f, 0.0f};
  const std::vector<float> l2 = {0.0f, 0.0f, 0.5f, 0.5f};  // tie: the lowest id
  SamplingOptions greedy;
  greedy.temperature = 0.0;
  const Rows target = {SamplingDistribution(l0.data(), 4, greedy),
                       SamplingDistribution(l1.data(), 4, greedy),
                       SamplingDistribution(l2.data(), 4, greedy)};
  std::mt19937_64 rng(8);
  const Rows q = {RandomDistribution(rng, 4), RandomDistribution(rng, 4)};
  for (uint64_t seed = 0; seed < 50; ++seed) {
    for (int d = 0; d < 4; ++d) {
      for (const Rows* probs : {&q, static_cast<const Rows*>(nullptr)}) {
        const Rows empty;
        const DraftVerifyResult r = Verify(target, {d, 0}, probs ? *probs : empty, seed, 3);
        if (d != 1) {
          EXPECT_EQ(r.accepted, 0);
          EXPECT_EQ(r.tokens, std::vector<int>({1}));
        } else {
          EXPECT_EQ(r.accepted, 2);
          EXPECT_EQ(r.tokens, std::vector<int>({1, 0, 2}));
          EXPECT_EQ(r.probs, std::vector<double>({1.0, 1.0, 1.0}));
        }
      }
    }
  }
  // The second draft wrong: one accepted, the correction is that row's argmax.
  const DraftVerifyResult r = Verify(target, {1, 3}, q, 11, 3);
  EXPECT_EQ(r.accepted, 1);
  EXPECT_EQ(r.tokens, std::vector<int>({1, 0}));
}

TEST(SpecSamplingTest, NoDraftsIsPlainSampling) {
  const std::vector<float> logits = {0.3f, -1.0f, 2.0f, 0.7f, 1.1f};
  SamplingOptions o;
  o.temperature = 0.8;
  o.top_k = 4;
  const Rows target = {SamplingDistribution(logits.data(), 5, o)};
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    const int64_t position = static_cast<int64_t>(seed % 37);
    const DraftVerifyResult r = Verify(target, {}, {}, seed, position);
    ASSERT_EQ(r.accepted, 0);
    ASSERT_EQ(r.tokens.size(), 1u);
    ASSERT_EQ(r.tokens[0], SampleToken(logits.data(), 5, o, seed, position).token)
        << "seed " << seed;
  }
}

// A toy Markov chain: the target p(x | previous token) and a different draft
// q(x | previous token). Row 1 of p is 0 at 1, row 3 at 2; q is 0 at some
// tokens p allows and positive at tokens p forbids.
constexpr int kVocab = 4;
const Rows kTargetChain = {{0.1, 0.4, 0.3, 0.2},
                           {0.5, 0.0, 0.25, 0.25},
                           {0.2, 0.2, 0.2, 0.4},
                           {0.05, 0.6, 0.0, 0.35}};
const Rows kDraftChain = {{0.25, 0.25, 0.25, 0.25},
                          {0.3, 0.3, 0.4, 0.0},
                          {0.0, 0.5, 0.1, 0.4},
                          {0.4, 0.4, 0.2, 0.0}};
// A certain (n-gram-like) drafter: always proposes kLookup[previous token].
// p(kLookup[3] | 3) = 0, so some drafts can never be accepted.
const int kLookup[kVocab] = {1, 0, 3, 2};
constexpr int kStartToken = 0;
constexpr int64_t kFirstPosition = 5;  // the prompt holds positions 0..4

std::vector<int> PlainDecode(uint64_t seed, int length) {
  std::vector<int> out;
  int prev = kStartToken;
  for (int i = 0; i < length; ++i) {
    prev = SampleFrom(kTargetChain[prev],
                      TokenUniform(seed, kFirstPosition + i, RandomPurpose::kSample));
    out.push_back(prev);
  }
  return out;
}

// Speculative decoding of the chain: each round drafts k tokens (from
// kDraftChain, or kLookup when `certain`), verifies them against the target
// rows conditioned on the drafted prefix and keeps what VerifyDraft emits.
std::vector<int> SpeculativeDecode(uint64_t seed, int length, int k, bool certain,
                                   int64_t* rounds) {
  std::vector<int> out;
  while (static_cast<int>(out.size()) < length) {
    const int64_t first = kFirstPosition + static_cast<int64_t>(out.size());
    int prev = out.empty() ? kStartToken : out.back();
    std::vector<int> drafts;
    Rows target, draft_probs;
    for (int j = 0; j < k; ++j) {
      target.push_back(kTargetChain[prev]);
      int d;
      if (certain) {
        d = kLookup[prev];
      } else {
        draft_probs.push_back(kDraftChain[prev]);
        d = SampleDraftToken(kDraftChain[prev], seed, first + j);
      }
      drafts.push_back(d);
      prev = d;
    }
    target.push_back(kTargetChain[prev]);
    const DraftVerifyResult r = Verify(target, drafts, draft_probs, seed, first);
    out.insert(out.end(), r.tokens.begin(), r.tokens.end());
    ++*rounds;
  }
  out.resize(static_cast<size_t>(length));
  return out;
}

int SequenceIndex(const std::vector<int>& s) {
  int index = 0;
  for (int x : s) index = index * kVocab + x;
  return index;
}

// Exact probability of every sequence of `length` tokens under the target.
std::vector<double> SequenceProbabilities(int length) {
  std::vector<double> probs(static_cast<size_t>(std::pow(kVocab, length)), 0.0);
  for (size_t index = 0; index < probs.size(); ++index) {
    double prob = 1.0;
    int prev = kStartToken;
    for (int i = length - 1; i >= 0; --i) {
      const int x = static_cast<int>(index / static_cast<size_t>(std::pow(kVocab, i))) % kVocab;
      prob *= kTargetChain[prev][x];
      prev = x;
    }
    probs[index] = prob;
  }
  return probs;
}

TEST(SpecSamplingTest, SpeculativeSequencesFollowTheTargetChain) {
  constexpr int kLength = 4;
  const std::vector<double> exact = SequenceProbabilities(kLength);
  std::vector<int64_t> plain(exact.size(), 0);
  for (uint64_t seed = 0; seed < static_cast<uint64_t>(kTrials); ++seed) ++plain[SequenceIndex(PlainDecode(seed, kLength))];
  ExpectDistributedAs(plain, exact, "plain decoding");
  for (int k : {1, 2, 3}) {
    std::vector<int64_t> spec(exact.size(), 0);
    int64_t rounds = 0;
    for (uint64_t seed = 0; seed < static_cast<uint64_t>(kTrials); ++seed) {
      ++spec[SequenceIndex(SpeculativeDecode(seed, kLength, k, false, &rounds))];
    }
    ExpectDistributedAs(spec, exact, "speculative, k = " + std::to_string(k));
    // Some rounds emit more than one token, or this tests nothing.
    EXPECT_LT(rounds, kTrials * kLength) << "k = " << k;
  }
}

TEST(SpecSamplingTest, CertainDraftsReproducePlainDecodingExactly) {
  constexpr int kLength = 12;
  for (int k : {1, 3, 5}) {
    int64_t rounds = 0;
    for (uint64_t seed = 0; seed < 20000; ++seed) {
      ASSERT_EQ(SpeculativeDecode(seed, kLength, k, true, &rounds), PlainDecode(seed, kLength))
          << "seed " << seed << ", k = " << k;
    }
    EXPECT_LT(rounds, 20000 * kLength) << "no draft was ever accepted, k = " << k;
    EXPECT_GT(rounds, 20000 * kLength / (k + 1)) << "every draft was accepted, k = " << k;
  }
}

}  // namespace
}  // namespace rlpost
