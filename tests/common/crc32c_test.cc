#include "common/crc32c.h"

#include <gtest/gtest.h>

namespace rlpost {
namespace {

TEST(Crc32cTest, KnownVectors) {
  // RFC 3720 B.4 check value.
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(zeros), 0x8A9136AAu);
}

TEST(Crc32cTest, ExtendsIncrementally) {
  std::string s = "hello weights";
  uint32_t whole = Crc32c(s);
  uint32_t part = Crc32c(s.data(), 5);
  EXPECT_EQ(Crc32c(s.data() + 5, s.size() - 5, part), whole);
}

}  // namespace
}  // namespace rlpost
