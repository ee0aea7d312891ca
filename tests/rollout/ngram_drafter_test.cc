#include "rollout/ngram_drafter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "rollout/sampler.h"
#include "rollout/spec_sampling.h"

namespace rlpost {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(NgramIndexTest, RepetitionInsideOneDocument) {
  NgramIndex index;
  const int doc = index.AddDocument({1, 2, 3, 4, 1, 2, 3});
  EXPECT_THAT(index.Propose(doc, 3), ElementsAre(4, 1, 2));
  // The continuation runs into the end of the document: shorter than k.
  EXPECT_THAT(index.Propose(doc, 10), ElementsAre(4, 1, 2, 3));
  EXPECT_THAT(index.Propose(doc, 1), ElementsAre(4));
  EXPECT_THAT(index.Propose(doc, 0), IsEmpty());
}

TEST(NgramIndexTest, MatchInASiblingDocument) {
  NgramIndex index;
  index.AddDocument({5, 6, 7, 8, 9});
  const int sibling = index.AddDocument({1, 6, 7});
  EXPECT_THAT(index.Propose(sibling, 2), ElementsAre(8, 9));
  EXPECT_EQ(index.num_documents(), 2);
  EXPECT_THAT(index.document(sibling), ElementsAre(1, 6, 7));
}

TEST(NgramIndexTest, LongestSuffixWinsOverRecency) {
  NgramIndex index;
  index.AddDocument({1, 2, 3, 50, 51});
  index.AddDocument({9, 2, 3, 60, 61});  // a more recent "2 3"
  const int a = index.AddDocument({1, 2, 3});
  EXPECT_THAT(index.Propose(a, 2), ElementsAre(50, 51));  // "1 2 3" matches doc 0
  const int b = index.AddDocument({7, 2, 3});
  EXPECT_THAT(index.Propose(b, 2), ElementsAre(60, 61));  // only "2 3": the latest

  NgramIndexOptions short_grams;
  short_grams.max_n = 2;
  NgramIndex bigrams(short_grams);
  bigrams.AddDocument({1, 2, 3, 50, 51});
  bigrams.AddDocument({9, 2, 3, 60, 61});
  const int c = bigrams.AddDocument({1, 2, 3});
  EXPECT_THAT(bigrams.Propose(c, 2), ElementsAre(60, 61));  // "1 2 3" is not indexed
}

TEST(NgramIndexTest, MostRecentOccurrenceAmongEqualLengths) {
  NgramIndex index;
  const int first = index.AddDocument({4, 5, 6});
  index.AddDocument({4, 5, 7});
  const int query = index.AddDocument({4, 5});
  EXPECT_THAT(index.Propose(query, 3), ElementsAre(7));
  // Appending registers a newer occurrence of "4 5".
  for (int t : {4, 5, 8}) index.Append(first, t);
  EXPECT_THAT(index.Propose(query, 3), ElementsAre(8));
  // Within one document: the latest "1" with a continuation is followed by 3.
  const int repeats = index.AddDocument({1, 2, 1, 3, 1});
  EXPECT_THAT(index.Propose(repeats, 5), ElementsAre(3, 1));
}

TEST(NgramIndexTest, NeverMatchesItsOwnEnd) {
  NgramIndex index;
  const int doc = index.AddDocument({1, 2, 3});
  EXPECT_THAT(index.Propose(doc, 4), IsEmpty());
  index.Append(doc, 4);
  EXPECT_THAT(index.Propose(doc, 4), IsEmpty());
  index.Append(doc, 2);
  EXPECT_THAT(index.Propose(doc, 4), ElementsAre(3, 4, 2));
  // "3 3": the first "3" is followed by the second (the latest "3" with a
  // continuation); the "3 3" at the end has no continuation yet.
  const int run = index.AddDocument({3, 3});
  EXPECT_THAT(index.Propose(run, 4), ElementsAre(3));
  index.Append(run, 5);
  index.Append(run, 3);  // "3 5 3": the latest "3" is followed by 5
  EXPECT_THAT(index.Propose(run, 4), ElementsAre(5, 3));
}

TEST(NgramIndexTest, EmptyWhenNothingMatches) {
  NgramIndex index;
  index.AddDocument({1, 2, 3});
  EXPECT_THAT(index.Propose(index.AddDocument({4}), 3), IsEmpty());
  EXPECT_THAT(index.Propose(index.AddDocument({}), 3), IsEmpty());

  NgramIndexOptions long_grams;
  long_grams.min_n = 2;
  NgramIndex index2(long_grams);
  index2.AddDocument({1, 2, 3});
  EXPECT_THAT(index2.Propose(index2.AddDocument({9, 2}), 3), IsEmpty());  // "2" is too short
  EXPECT_THAT(index2.Propose(index2.AddDocument({1, 2}), 3), ElementsAre(3));
}

TEST(NgramIndexTest, ValidateOptionsNamesTheField) {
  EXPECT_TRUE(ValidateNgramIndexOptions({}).ok());
  NgramIndexOptions o;
  o.min_n = 0;
  absl::Status s = ValidateNgramIndexOptions(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("min_n"));
  o.min_n = 3;
  o.max_n = 2;
  s = ValidateNgramIndexOptions(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("max_n"));
}

TEST(NgramIndexTest, IndexingStopsAtTheTokenCap) {
  NgramIndexOptions o;
  o.max_indexed_tokens = 3;
  NgramIndex index(o);
  const int doc = index.AddDocument({1, 2, 3, 4, 5, 6});  // continuations 2, 3, 4 indexed
  const int a = index.AddDocument({1});
  const int b = index.AddDocument({5});
  EXPECT_THAT(index.Propose(a, 2), ElementsAre(2, 3));
  EXPECT_THAT(index.Propose(b, 2), IsEmpty());
  index.Append(doc, 7);
  EXPECT_THAT(index.document(doc), ElementsAre(1, 2, 3, 4, 5, 6, 7));
}

// The reference semantics, by brute force: every occurrence whose
// continuation has been added, stamped with the time that token was added.
class BruteForceIndex {
 public:
  explicit BruteForceIndex(NgramIndexOptions o) : o_(o) {}
  void AddDocument(const std::vector<int>& tokens) {
    docs_.emplace_back();
    times_.emplace_back();
    for (int t : tokens) Append(static_cast<int>(docs_.size()) - 1, t);
  }
  void Append(int doc, int token) {
    docs_[doc].push_back(token);
    times_[doc].push_back(clock_++);
  }
  std::vector<int> Propose(int doc, int k) const {
    const std::vector<int>& q = docs_[doc];
    for (int n = std::min<int>(o_.max_n, static_cast<int>(q.size())); n >= o_.min_n; --n) {
      int best_doc = -1;
      size_t best_pos = 0;
      int64_t best_time = -1;
      for (size_t d = 0; d < docs_.size(); ++d) {
        for (size_t pos = static_cast<size_t>(n); pos < docs_[d].size(); ++pos) {
          if (times_[d][pos] > best_time &&
              std::equal(docs_[d].begin() + (pos - n), docs_[d].begin() + pos, q.end() - n)) {
            best_doc = static_cast<int>(d);
            best_pos = pos;
            best_time = times_[d][pos];
          }
        }
      }
      if (best_doc >= 0) {
        const std::vector<int>& s = docs_[best_doc];
        return std::vector<int>(s.begin() + best_pos,
                                s.begin() + std::min(s.size(), best_pos + k));
      }
    }
    return {};
  }

 private:
  NgramIndexOptions o_;
  std::vector<std::vector<int>> docs_;
  std::vector<std::vector<int64_t>> times_;
  int64_t clock_ = 0;
};

TEST(NgramIndexTest, IncrementalAppendEqualsIndexingFromScratch) {
  std::mt19937_64 rng(17);
  for (int round = 0; round < 20; ++round) {
    NgramIndexOptions o;
    o.min_n = 1 + round % 2;
    o.max_n = o.min_n + round % 4;
    const int vocab = 3 + round % 4;  // small: many repeated n-grams
    std::vector<std::vector<int>> docs(4);
    for (auto& d : docs) {
      d.resize(5 + rng() % 40);
      for (int& t : d) t = static_cast<int>(rng() % vocab);
    }
    NgramIndex scratch(o), incremental(o);
    for (const auto& d : docs) {
      scratch.AddDocument(d);
      const int id = incremental.AddDocument({d[0]});
      for (size_t i = 1; i < d.size(); ++i) incremental.Append(id, d[i]);
    }
    for (int doc = 0; doc < 4; ++doc) {
      for (int k : {1, 3, 8}) {
        ASSERT_EQ(scratch.Propose(doc, k), incremental.Propose(doc, k))
            << "round " << round << " doc " << doc << " k " << k;
      }
    }
  }
}

TEST(NgramIndexTest, InterleavedGrowthMatchesBruteForce) {
  std::mt19937_64 rng(23);
  for (int round = 0; round < 10; ++round) {
    NgramIndexOptions o;
    o.min_n = 1 + round % 2;
    o.max_n = o.min_n + 1 + round % 3;
    const int vocab = 3 + round % 3;
    NgramIndex index(o);
    BruteForceIndex reference(o);
    std::vector<int> prompt(6 + rng() % 10);
    for (int& t : prompt) t = static_cast<int>(rng() % vocab);
    index.AddDocument(prompt);
    reference.AddDocument(prompt);
    for (int s = 0; s < 4; ++s) {  // the group's samples, all continuing the prompt
      index.AddDocument(prompt);
      reference.AddDocument(prompt);
    }
    for (int step = 0; step < 200; ++step) {
      const int doc = 1 + static_cast<int>(rng() % 4);
      const int token = static_cast<int>(rng() % vocab);
      index.Append(doc, token);
      reference.Append(doc, token);
      for (int d = 0; d < 5; ++d) {
        ASSERT_EQ(index.Propose(d, 4), reference.Propose(d, 4))
            << "round " << round << " step " << step << " doc " << d;
      }
    }
  }
}

// With n-gram drafts verified as certain drafts, speculative decoding emits
// exactly what plain decoding emits, and drafts do get accepted.
TEST(NgramIndexTest, SpeculativeDecodingWithNgramDraftsEqualsPlainDecoding) {
  constexpr int kVocab = 6;
  std::vector<std::vector<double>> chain(kVocab, std::vector<double>(kVocab, 0.02));
  for (int x = 0; x < kVocab; ++x) chain[x][(x + 1) % kVocab] = 0.9;  // mostly a cycle
  const std::vector<int> prompt = {0, 1, 2, 3, 4, 5, 0, 1};
  const int64_t prompt_len = static_cast<int64_t>(prompt.size());
  constexpr int kNew = 40;
  int64_t accepted = 0;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    std::vector<int> plain = prompt;
    for (int i = 0; i < kNew; ++i) {
      plain.push_back(SampleFrom(chain[plain.back()],
                                 TokenUniform(seed, prompt_len + i, RandomPurpose::kSample)));
    }
    NgramIndex index;
    index.AddDocument(prompt);
    const int doc = index.AddDocument(prompt);
    while (static_cast<int64_t>(index.document(doc).size()) < prompt_len + kNew) {
      const std::vector<int> drafts = index.Propose(doc, 4);
      std::vector<std::vector<double>> target = {chain[index.document(doc).back()]};
      for (int d : drafts) target.push_back(chain[d]);
      const std::vector<std::vector<double>> no_probs;
      DraftVerifyInput input;
      input.target = &target;
      input.draft_tokens = drafts;
      input.draft_probs = &no_probs;
      input.seed = seed;
      input.first_position = static_cast<int64_t>(index.document(doc).size());
      const DraftVerifyResult r = VerifyDraft(input);
      accepted += r.accepted;
      for (int t : r.tokens) {
        if (static_cast<int64_t>(index.document(doc).size()) < prompt_len + kNew) {
          index.Append(doc, t);
        }
      }
    }
    ASSERT_EQ(index.document(doc), plain) << "seed " << seed;
  }
  EXPECT_GT(accepted, 300 * kNew / 4);
}

// Not a benchmark: indexing and proposing on a long document stays cheap
// enough to run per decoded token. The rate is recorded, not asserted.
TEST(NgramIndexTest, ThroughputSanity) {
  std::mt19937_64 rng(5);
  NgramIndex index;
  const int doc = index.AddDocument({});
  constexpr int kTokens = 200000;
  int64_t proposed = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kTokens; ++i) {
    // Repetitive text: phrases of a small vocabulary, like code or math.
    index.Append(doc, static_cast<int>(rng() % 64 < 48 ? i % 17 : rng() % 500));
    proposed += static_cast<int64_t>(index.Propose(doc, 8).size());
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(index.document(doc).size(), static_cast<size_t>(kTokens));
  EXPECT_GT(proposed, kTokens);  // the repetition is found
  RecordProperty("append_and_propose_per_second",
                 std::to_string(static_cast<int64_t>(kTokens / std::max(seconds, 1e-9))));
}

}  // namespace
}  // namespace rlpost
