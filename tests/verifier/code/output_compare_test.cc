#include "verifier/code/output_compare.h"

#include <random>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rlpost::code {
namespace {

using ::testing::HasSubstr;

CompareMode Mode(const char* text) {
  absl::StatusOr<CompareMode> mode = ParseCompareMode(text);
  EXPECT_TRUE(mode.ok()) << mode.status();
  return mode.ok() ? *mode : CompareMode{};
}

TEST(CompareModeTest, ParsesKnownModes) {
  EXPECT_EQ(Mode("exact").kind, CompareMode::Kind::kExact);
  EXPECT_EQ(Mode("trim").kind, CompareMode::Kind::kTrim);
  EXPECT_EQ(Mode("").kind, CompareMode::Kind::kTrim);
  EXPECT_EQ(Mode("tokens").kind, CompareMode::Kind::kTokens);
  EXPECT_EQ(Mode("float:1e-6").kind, CompareMode::Kind::kFloat);
  EXPECT_DOUBLE_EQ(Mode("float:0.25").tolerance, 0.25);
}

TEST(CompareModeTest, RejectsUnknownModeNamingTheField) {
  absl::StatusOr<CompareMode> mode = ParseCompareMode("fuzzy");
  ASSERT_FALSE(mode.ok());
  EXPECT_EQ(mode.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(mode.status().message(), HasSubstr("compare"));
  EXPECT_THAT(mode.status().message(), HasSubstr("fuzzy"));
}

TEST(CompareModeTest, RejectsBadTolerance) {
  for (const char* text : {"float:", "float:abc", "float:-1", "float:nan", "float:inf", "float:1x"}) {
    absl::StatusOr<CompareMode> mode = ParseCompareMode(text);
    ASSERT_FALSE(mode.ok()) << text;
    EXPECT_EQ(mode.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(mode.status().message(), HasSubstr("compare")) << text;
  }
}

TEST(OutputMatchesTest, Exact) {
  const CompareMode m = Mode("exact");
  EXPECT_TRUE(OutputMatches(m, "1 2\n", "1 2\n"));
  EXPECT_FALSE(OutputMatches(m, "1 2", "1 2\n"));
  EXPECT_FALSE(OutputMatches(m, "1  2\n", "1 2\n"));
}

TEST(OutputMatchesTest, TrimIgnoresTrailingSpaceAndBlankLinesOnly) {
  const CompareMode m = Mode("trim");
  EXPECT_TRUE(OutputMatches(m, "1 2  \r\n3\n\n\n", "1 2\n3"));
  EXPECT_TRUE(OutputMatches(m, "\n\nabc\n", "abc"));
  EXPECT_FALSE(OutputMatches(m, "1  2\n", "1 2\n"));
  EXPECT_FALSE(OutputMatches(m, "1\n\n2\n", "1\n2\n"));
  EXPECT_FALSE(OutputMatches(m, " 1\n", "1\n"));
}

TEST(OutputMatchesTest, Tokens) {
  const CompareMode m = Mode("tokens");
  EXPECT_TRUE(OutputMatches(m, "1   2\n\n3\t", "1 2 3"));
  EXPECT_FALSE(OutputMatches(m, "1 2", "1 2 3"));
  EXPECT_FALSE(OutputMatches(m, "1.0", "1"));
  EXPECT_TRUE(OutputMatches(m, "", " \n"));
}

TEST(OutputMatchesTest, FloatToleranceIsAbsoluteBelowOneRelativeAbove) {
  const CompareMode m = Mode("float:1e-3");
  EXPECT_TRUE(OutputMatches(m, "0.3334 yes", "0.3333 yes"));
  EXPECT_FALSE(OutputMatches(m, "0.335", "0.3333"));
  EXPECT_TRUE(OutputMatches(m, "1000.5", "1000"));  // relative: 1e-3 * 1000
  EXPECT_FALSE(OutputMatches(m, "1002", "1000"));
  EXPECT_FALSE(OutputMatches(m, "yes", "no"));
  EXPECT_FALSE(OutputMatches(m, "nan", "nan1"));
  EXPECT_FALSE(OutputMatches(m, "inf", "1e308"));
  EXPECT_FALSE(OutputMatches(m, "1 2", "1"));
}

// Property: arbitrary bytes never crash any mode, every mode is reflexive,
// and tokens/float accept whatever trim accepts.
TEST(OutputMatchesTest, FuzzReflexiveAndOrdered) {
  std::mt19937 rng(12345);
  const std::string alphabet = "0123456789.-+eE \t\r\nabc";
  const CompareMode modes[] = {Mode("exact"), Mode("trim"), Mode("tokens"), Mode("float:1e-9")};
  for (int iter = 0; iter < 2000; ++iter) {
    std::string a, b;
    const int na = rng() % 24, nb = rng() % 24;
    for (int i = 0; i < na; ++i) a.push_back(iter % 7 == 0 ? char(rng() % 256) : alphabet[rng() % alphabet.size()]);
    for (int i = 0; i < nb; ++i) b.push_back(alphabet[rng() % alphabet.size()]);
    for (const CompareMode& m : modes) {
      EXPECT_TRUE(OutputMatches(m, a, a)) << a;
      (void)OutputMatches(m, a, b);
    }
    if (OutputMatches(modes[0], a, b)) EXPECT_TRUE(OutputMatches(modes[1], a, b));
    if (OutputMatches(modes[2], a, b)) EXPECT_TRUE(OutputMatches(modes[3], a, b));
  }
}

}  // namespace
}  // namespace rlpost::code
