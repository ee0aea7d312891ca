#include "model/char_tokenizer.h"

#include <gtest/gtest.h>

namespace rlpost {
namespace {

TEST(CharTokenizerTest, RoundTripsPrintableAscii) {
  CharTokenizer tok;
  std::string text = "12+34= 4+2=6, \\boxed{46}\n~";
  auto ids = tok.Encode(text);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->size(), text.size());
  for (int id : *ids) {
    EXPECT_GE(id, 3);
    EXPECT_LT(id, tok.vocab_size());
  }
  EXPECT_EQ(tok.Decode(*ids), text);
}

TEST(CharTokenizerTest, SpecialTokensDropOnDecode) {
  CharTokenizer tok;
  auto ids = *tok.Encode("ab");
  ids.insert(ids.begin(), CharTokenizer::kBos);
  ids.push_back(CharTokenizer::kEos);
  EXPECT_EQ(tok.Decode(ids), "ab");
}

TEST(CharTokenizerTest, NonAsciiIsAnErrorWithOffset) {
  CharTokenizer tok;
  auto ids = tok.Encode("ab\xc3\xa9");
  ASSERT_FALSE(ids.ok());
  EXPECT_NE(ids.status().message().find("offset 2"), std::string::npos);
}

}  // namespace
}  // namespace rlpost
