// Property tests for the safetensors reader on hostile input: random bytes,
// truncations, byte flips and headers assembled from fragments. Every input
// must give a Status (never a crash, hang or out-of-bounds read; run this
// binary under -fsanitize=address,undefined to check the last), and every
// successful read must satisfy the format's invariants. Seeded and
// deterministic.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "model/safetensors.h"
#include "tests/model/safetensors_test_util.h"

namespace rlpost {
namespace {

using testing_util::PatternTensor;
using testing_util::ReadFileBytes;
using testing_util::SafetensorsBytes;
using testing_util::WriteFileBytes;

std::string TempPath(const std::string& name) { return ::testing::TempDir() + "/" + name; }

uint64_t HeaderLength(const std::string& file) {
  uint64_t n = 0;
  for (int i = 0; i < 8 && i < static_cast<int>(file.size()); ++i) {
    n |= uint64_t{static_cast<unsigned char>(file[i])} << (8 * i);
  }
  return n;
}

// What any result of reading `file` must satisfy.
void CheckResult(const absl::StatusOr<std::vector<RawTensor>>& r, const std::string& file) {
  if (!r.ok()) {
    absl::StatusCode code = r.status().code();
    ASSERT_TRUE(code == absl::StatusCode::kDataLoss || code == absl::StatusCode::kInvalidArgument)
        << r.status();
    ASSERT_FALSE(r.status().message().empty());
    return;
  }
  uint64_t data_size = file.size() - 8 - HeaderLength(file);
  uint64_t total = 0;
  std::set<std::string> names;
  for (const RawTensor& t : *r) {
    ASSERT_TRUE(names.insert(t.name).second) << "duplicate " << t.name;
    int64_t n = 1;
    for (int64_t d : t.shape) {
      ASSERT_GE(d, 0);
      n *= d;
    }
    ASSERT_EQ(t.bytes.size(), static_cast<uint64_t>(n * DTypeSize(t.dtype))) << t.name;
    total += t.bytes.size();
  }
  ASSERT_EQ(total, data_size);  // tensors tile the data section exactly
}

// A valid file with every dtype, a zero-sized tensor and a scalar.
std::string ValidFile() {
  std::string path = TempPath("fuzz_seed.safetensors");
  std::vector<RawTensor> tensors = {PatternTensor("embed", RawDType::kBFloat16, {3, 4}, 1),
                                    PatternTensor("norm", RawDType::kFloat32, {5}, 2),
                                    PatternTensor("zero", RawDType::kFloat32, {0, 3}, 3),
                                    PatternTensor("half", RawDType::kFloat16, {2, 3}, 4),
                                    PatternTensor("scalar", RawDType::kFloat32, {}, 5)};
  EXPECT_TRUE(WriteSafetensors(path, tensors).ok());
  return ReadFileBytes(path);
}

TEST(SafetensorsFuzzTest, RandomBytes) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 4000; ++i) {
    std::string file(rng() % 300, '\0');
    for (char& c : file) c = static_cast<char>(rng());
    // Half the time, a header length that fits, so the JSON parser sees the bytes.
    if (file.size() >= 8 && (rng() & 1)) {
      uint64_t n = rng() % (file.size() - 7);
      for (int k = 0; k < 8; ++k) file[k] = static_cast<char>(n >> (8 * k));
      if (n > 0 && (rng() & 1)) file[8] = '{';
    }
    CheckResult(ParseSafetensors(file, "random"), file);
  }
}

TEST(SafetensorsFuzzTest, EveryTruncationOfAValidFileFails) {
  std::string file = ValidFile();
  ASSERT_TRUE(ParseSafetensors(file, "valid").ok());
  std::string path = TempPath("fuzz_truncated.safetensors");
  for (size_t len = 0; len < file.size(); ++len) {
    std::string cut = file.substr(0, len);
    absl::StatusOr<std::vector<RawTensor>> r = ParseSafetensors(cut, "cut");
    ASSERT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << "length " << len;
    // Same answer through the file reader.
    WriteFileBytes(path, cut);
    absl::StatusOr<std::vector<RawTensor>> from_file = ReadSafetensors(path);
    ASSERT_EQ(from_file.status().code(), absl::StatusCode::kDataLoss) << "length " << len;
  }
}

TEST(SafetensorsFuzzTest, ExtraBytesAfterAValidFileFail) {
  std::string file = ValidFile();
  for (int extra = 1; extra <= 16; ++extra) {
    EXPECT_EQ(ParseSafetensors(file + std::string(extra, '\0'), "grown").status().code(),
              absl::StatusCode::kDataLoss);
  }
}

TEST(SafetensorsFuzzTest, SingleByteCorruptionOfTheHeader) {
  std::string file = ValidFile();
  uint64_t header_end = 8 + HeaderLength(file);
  std::mt19937_64 rng(2);
  int still_ok = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string bad = file;
    size_t pos = rng() % header_end;
    bad[pos] = static_cast<char>(rng());
    absl::StatusOr<std::vector<RawTensor>> r = ParseSafetensors(bad, "flipped");
    CheckResult(r, bad);
    if (r.ok()) ++still_ok;
  }
  // Some flips are harmless (padding, name characters); most are not.
  EXPECT_GT(still_ok, 0);
  EXPECT_LT(still_ok, 5000);
}

TEST(SafetensorsFuzzTest, SeveralByteCorruptionsThroughTheFileReader) {
  std::string file = ValidFile();
  std::string path = TempPath("fuzz_flipped.safetensors");
  std::mt19937_64 rng(3);
  for (int i = 0; i < 300; ++i) {
    std::string bad = file;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) bad[rng() % bad.size()] = static_cast<char>(rng());
    WriteFileBytes(path, bad);
    absl::StatusOr<std::vector<RawTensor>> r = ReadSafetensors(path);
    CheckResult(r, bad);
    // File and memory readers agree.
    ASSERT_EQ(r.status().code(), ParseSafetensors(bad, path).status().code());
  }
}

// Headers assembled from plausible and hostile fragments.
class HeaderGenerator {
 public:
  explicit HeaderGenerator(uint64_t seed) : rng_(seed) {}

  // Returns a whole file: header plus a data section of a random size near
  // what the header claims.
  std::string File() {
    std::string header = "{";
    int entries = static_cast<int>(rng_() % 5);
    uint64_t offset = 0;
    for (int i = 0; i < entries; ++i) {
      if (i > 0) header += Pick({",", ",", ",", ",", "", ",,"});
      if (rng_() % 8 == 0) {
        header += Pick({R"("__metadata__":{"format":"pt"})", R"("__metadata__":{"a":1})",
                        R"("__metadata__":[])", R"("__metadata__":"x")"});
        continue;
      }
      header += "\"" + Pick({"a", "b", "c", "model.w", "", "\\u0000", "\\ud800", "é"}) + "\":";
      if (rng_() % 10 == 0) {
        header += Pick({"1", "null", "[]", "\"s\"", "{}", "{\"dtype\":\"F32\"}"});
        continue;
      }
      std::string dtype = Pick({"F32", "BF16", "F16", "F64", "I8", "", "f32", "BF16 "});
      int64_t size = dtype == "F32" ? 4 : dtype == "BF16" || dtype == "F16" ? 2 : 1;
      std::vector<std::string> dims;
      int64_t numel = 1;
      int rank = static_cast<int>(rng_() % 4);
      for (int d = 0; d < rank; ++d) {
        int64_t v = static_cast<int64_t>(rng_() % 4);
        numel *= v;
        dims.push_back(std::to_string(v));
      }
      if (rng_() % 10 == 0) {
        dims.push_back(Pick({"-1", "1.5", "\"2\"", "9223372036854775807", "18446744073709551616",
                             "4294967296", "1e2", "null", "true", "-0"}));
      }
      uint64_t begin = offset, end = offset + static_cast<uint64_t>(numel * size);
      if (rng_() % 6 == 0) begin += rng_() % 3;
      if (rng_() % 6 == 0)
        end = PickNumber({0, end + 1, end - 1, begin, ~uint64_t{0}, uint64_t{1} << 63});
      offset = end;
      std::string offsets = "[" + std::to_string(begin) + "," + std::to_string(end) + "]";
      if (rng_() % 12 == 0) offsets = Pick({"[0]", "[1,2,3]", "[\"0\",\"4\"]", "[-1,3]", "{}"});
      header += "{\"dtype\":\"" + dtype + "\",\"shape\":[" + Join(dims) +
                "],\"data_offsets\":" + offsets + "}";
      if (rng_() % 15 == 0) header.insert(rng_() % header.size(), Pick({"{", "}", "[", "\"", ":"}));
    }
    header += "}";
    if (rng_() % 4 == 0) header += std::string(rng_() % 8, ' ');
    uint64_t data = std::min<uint64_t>(offset, 4096);  // offsets may be absurd
    if (rng_() % 5 == 0) data += rng_() % 5;
    if (rng_() % 5 == 0) data -= rng_() % (data + 1);
    return SafetensorsBytes(header, std::string(data, 'd'));
  }

 private:
  std::string Pick(std::initializer_list<const char*> options) {
    return options.begin()[rng_() % options.size()];
  }

  uint64_t PickNumber(std::initializer_list<uint64_t> options) {
    return options.begin()[rng_() % options.size()];
  }

  static std::string Join(const std::vector<std::string>& parts) {
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) out += (i ? "," : "") + parts[i];
    return out;
  }

  std::mt19937_64 rng_;
};

TEST(SafetensorsFuzzTest, HeadersFromFragments) {
  HeaderGenerator gen(4);
  int ok = 0, failed = 0;
  for (int i = 0; i < 6000; ++i) {
    std::string file = gen.File();
    absl::StatusOr<std::vector<RawTensor>> r = ParseSafetensors(file, "generated");
    CheckResult(r, file);
    (r.ok() ? ok : failed)++;
  }
  // The generator must reach both sides, or it tests too little.
  EXPECT_GT(ok, 100);
  EXPECT_GT(failed, 100);
}

TEST(SafetensorsFuzzTest, ConversionOfEveryReadTensorSucceeds) {
  HeaderGenerator gen(5);
  for (int i = 0; i < 1000; ++i) {
    std::string file = gen.File();
    absl::StatusOr<std::vector<RawTensor>> r = ParseSafetensors(file, "generated");
    if (!r.ok()) continue;
    for (RawDType to : {RawDType::kFloat32, RawDType::kBFloat16, RawDType::kFloat16}) {
      for (const RawTensor& t : *r) {
        absl::StatusOr<RawTensor> c = ConvertDType(t, to);
        ASSERT_TRUE(c.ok()) << c.status();
        ASSERT_EQ(c->bytes.size(), t.bytes.size() / DTypeSize(t.dtype) * DTypeSize(to));
      }
    }
  }
}

}  // namespace
}  // namespace rlpost
