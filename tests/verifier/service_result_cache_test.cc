// ResultCache: keys, LRU eviction and hit counts.

#include "verifier/result_cache.h"

#include <string>

#include "gtest/gtest.h"

namespace rlpost {
namespace {

v1::VerifyItem MathItem(const std::string& id, const std::string& response,
                        const std::string& reference) {
  v1::VerifyItem item;
  item.set_id(id);
  item.set_kind("math");
  item.set_response(response);
  item.set_reference(reference);
  return item;
}

v1::Verdict VerdictWithReason(const std::string& reason) {
  v1::Verdict v;
  v.set_reason(reason);
  return v;
}

TEST(ResultCacheKeyTest, IdAndDeadlineAreNotPartOfTheKey) {
  v1::VerifyItem a = MathItem("a", "\\boxed{1}", "1");
  v1::VerifyItem b = MathItem("b", "\\boxed{1}", "1");
  b.set_deadline_ms(17);
  EXPECT_EQ(ResultCache::KeyOf(a, "math", "v1"), ResultCache::KeyOf(b, "math", "v1"));
}

TEST(ResultCacheKeyTest, KindTaskResponseAndVersionAreAllPartOfTheKey) {
  const v1::VerifyItem base = MathItem("a", "\\boxed{1}", "1");
  const ResultCacheKey key = ResultCache::KeyOf(base, "math", "v1");
  EXPECT_FALSE(key == ResultCache::KeyOf(base, "code", "v1"));
  EXPECT_FALSE(key == ResultCache::KeyOf(base, "math", "v2"));
  EXPECT_FALSE(key == ResultCache::KeyOf(MathItem("a", "\\boxed{2}", "1"), "math", "v1"));
  EXPECT_FALSE(key == ResultCache::KeyOf(MathItem("a", "\\boxed{1}", "2"), "math", "v1"));
  v1::VerifyItem answer_only = base;
  answer_only.set_mode("answer_only");
  EXPECT_FALSE(key == ResultCache::KeyOf(answer_only, "math", "v1"));
  // Field boundaries matter: moving bytes between response and reference
  // gives another key.
  EXPECT_FALSE(ResultCache::KeyOf(MathItem("", "ab", "c"), "math", "v1") ==
               ResultCache::KeyOf(MathItem("", "a", "bc"), "math", "v1"));
}

TEST(ResultCacheKeyTest, CodeTestsAndLimitsArePartOfTheKey) {
  v1::VerifyItem item;
  item.set_kind("code");
  item.mutable_code()->set_language("python");
  item.mutable_code()->set_code("print(input())");
  v1::CodeTest* t = item.mutable_code()->add_tests();
  t->set_stdin("1\n");
  t->set_expected_stdout("1\n");
  const ResultCacheKey key = ResultCache::KeyOf(item, "code", "c1");
  v1::VerifyItem other_expected = item;
  other_expected.mutable_code()->mutable_tests(0)->set_expected_stdout("2\n");
  EXPECT_FALSE(key == ResultCache::KeyOf(other_expected, "code", "c1"));
  v1::VerifyItem other_limits = item;
  other_limits.mutable_code()->mutable_limits()->set_time_limit_s(1);
  EXPECT_FALSE(key == ResultCache::KeyOf(other_limits, "code", "c1"));
  v1::VerifyItem other_language = item;
  other_language.mutable_code()->set_language("cpp");
  EXPECT_FALSE(key == ResultCache::KeyOf(other_language, "code", "c1"));
}

TEST(ResultCacheTest, CountsHitsAndMisses) {
  ResultCache cache(4);
  const ResultCacheKey k = ResultCache::KeyOf(MathItem("a", "x", "y"), "math", "v1");
  EXPECT_FALSE(cache.Lookup(k).has_value());
  cache.Insert(k, VerdictWithReason("first"));
  std::optional<v1::Verdict> hit = cache.Lookup(k);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->reason(), "first");
  EXPECT_EQ(cache.hits(), 1);
  EXPECT_EQ(cache.misses(), 1);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(ResultCacheTest, EvictsTheLeastRecentlyUsed) {
  ResultCache cache(2);
  auto key = [](const std::string& r) {
    return ResultCache::KeyOf(MathItem("", r, "1"), "math", "v1");
  };
  cache.Insert(key("a"), VerdictWithReason("a"));
  cache.Insert(key("b"), VerdictWithReason("b"));
  ASSERT_TRUE(cache.Lookup(key("a")).has_value());  // a is now the most recent
  cache.Insert(key("c"), VerdictWithReason("c"));   // evicts b
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_TRUE(cache.Lookup(key("a")).has_value());
  EXPECT_FALSE(cache.Lookup(key("b")).has_value());
  EXPECT_TRUE(cache.Lookup(key("c")).has_value());
}

TEST(ResultCacheTest, ReinsertingReplacesWithoutGrowing) {
  ResultCache cache(2);
  const ResultCacheKey k = ResultCache::KeyOf(MathItem("", "r", "1"), "math", "v1");
  cache.Insert(k, VerdictWithReason("old"));
  cache.Insert(k, VerdictWithReason("new"));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.Lookup(k)->reason(), "new");
}

TEST(ResultCacheTest, CapacityZeroDisablesIt) {
  ResultCache cache(0);
  const ResultCacheKey k = ResultCache::KeyOf(MathItem("", "r", "1"), "math", "v1");
  cache.Insert(k, VerdictWithReason("x"));
  EXPECT_FALSE(cache.Lookup(k).has_value());
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace rlpost
