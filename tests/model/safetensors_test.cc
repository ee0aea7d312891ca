#include "model/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/model/safetensors_test_util.h"

namespace rlpost {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing_util::Bytes16;
using testing_util::Bytes32;
using testing_util::Halves;
using testing_util::PatternTensor;
using testing_util::ReadFileBytes;
using testing_util::SafetensorsBytes;
using testing_util::StatusIs;
using testing_util::Words;
using testing_util::WriteFileBytes;

std::string TempPath(const std::string& name) { return ::testing::TempDir() + "/" + name; }

void ExpectSameTensors(const std::vector<RawTensor>& got, const std::vector<RawTensor>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].name, want[i].name);
    EXPECT_EQ(got[i].dtype, want[i].dtype) << want[i].name;
    EXPECT_EQ(got[i].shape, want[i].shape) << want[i].name;
    EXPECT_TRUE(got[i].bytes == want[i].bytes) << want[i].name << ": bytes differ";
  }
}

// ---- Round trips -----------------------------------------------------------

TEST(SafetensorsTest, RoundTripKeepsOrderDtypesAndShapes) {
  std::vector<RawTensor> tensors = {
      PatternTensor("model.norm.weight", RawDType::kFloat32, {2, 3}, 1),
      PatternTensor("lm_head.weight", RawDType::kBFloat16, {4}, 2),
      PatternTensor("a.half", RawDType::kFloat16, {3, 1}, 3),
      PatternTensor("empty", RawDType::kFloat32, {0, 5}, 4),
      PatternTensor("scalar", RawDType::kBFloat16, {}, 5),
  };
  std::string path = TempPath("rt.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, tensors).ok());
  absl::StatusOr<std::vector<RawTensor>> back = ReadSafetensors(path);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameTensors(*back, tensors);
  // The in-memory parser agrees with the file reader.
  absl::StatusOr<std::vector<RawTensor>> parsed = ParseSafetensors(ReadFileBytes(path), "mem");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectSameTensors(*parsed, tensors);
}

TEST(SafetensorsTest, F32SpecialValuesRoundTripBitExact) {
  std::vector<uint32_t> bits = {
      0x00000000, 0x80000000,              // +0, -0
      0x7f800000, 0xff800000,              // +-inf
      0x7fc00000, 0xffc00001, 0x7fa5a5a5,  // quiet NaNs with payloads
      0x7f800001, 0xff800002,              // signalling NaNs
      0x00000001, 0x807fffff, 0x00400000,  // denormals
      0x7f7fffff, 0x3f800000, 0xbf800001,
  };
  RawTensor t{"special", RawDType::kFloat32, {static_cast<int64_t>(bits.size())}, Bytes32(bits)};
  std::string path = TempPath("special_f32.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {t}).ok());
  absl::StatusOr<std::vector<RawTensor>> back = ReadSafetensors(path);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ(Words((*back)[0].bytes), bits);
}

TEST(SafetensorsTest, BF16SpecialValuesRoundTripBitExact) {
  std::vector<uint16_t> bits = {0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0xffc1,
                                0x7f81, 0x0001, 0x807f, 0x3f80, 0x7f7f, 0xabcd};
  RawTensor t{"special", RawDType::kBFloat16, {3, 4}, Bytes16(bits)};
  std::string path = TempPath("special_bf16.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {t}).ok());
  absl::StatusOr<std::vector<RawTensor>> back = ReadSafetensors(path);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ((*back)[0].dtype, RawDType::kBFloat16);
  EXPECT_EQ(Halves((*back)[0].bytes), bits);
}

TEST(SafetensorsTest, HeaderCarriesFormatPtAndDataIsAligned) {
  std::string path = TempPath("meta.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {PatternTensor("w", RawDType::kFloat32, {3}, 0)}).ok());
  std::string bytes = ReadFileBytes(path);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
  EXPECT_EQ((8 + n) % 8, 0u);
  nlohmann::json header = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(header["__metadata__"], nlohmann::json({{"format", "pt"}}));
  EXPECT_EQ(header["w"]["dtype"], "F32");
  EXPECT_EQ(header["w"]["data_offsets"], nlohmann::json({0, 12}));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(SafetensorsTest, ReadsF16AndConvertsOnRequest) {
  // 1.0, -2.0, 65504, smallest subnormal, -0.0, +inf
  std::vector<uint16_t> halves = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00};
  std::string header = R"({"h":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]}})";
  std::string file = SafetensorsBytes(header, Bytes16(halves));

  absl::StatusOr<std::vector<RawTensor>> as_stored = ParseSafetensors(file, "f16");
  ASSERT_TRUE(as_stored.ok()) << as_stored.status();
  EXPECT_EQ((*as_stored)[0].dtype, RawDType::kFloat16);
  EXPECT_EQ(Halves((*as_stored)[0].bytes), halves);

  std::string path = TempPath("f16.safetensors");
  WriteFileBytes(path, file);
  SafetensorsReadOptions options;
  options.convert_to = RawDType::kFloat32;
  absl::StatusOr<std::vector<RawTensor>> f32 = ReadSafetensors(path, options);
  ASSERT_TRUE(f32.ok()) << f32.status();
  ASSERT_EQ((*f32)[0].dtype, RawDType::kFloat32);
  EXPECT_EQ((*f32)[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(Words((*f32)[0].bytes),
            (std::vector<uint32_t>{0x3f800000, 0xc0000000, FloatToBits(65504.0f),
                                   FloatToBits(std::ldexp(1.0f, -24)), 0x80000000, 0x7f800000}));
}

// ---- Scalar conversions ----------------------------------------------------

TEST(DTypeConversionTest, FloatToBFloat16HandComputedValues) {
  EXPECT_EQ(FloatToBFloat16Bits(1.0f), 0x3f80);
  EXPECT_EQ(FloatToBFloat16Bits(-2.0f), 0xc000);
  // Ties go to the even neighbour.
  EXPECT_EQ(FloatBitsToBFloat16Bits(0x3f808000), 0x3f80);
  EXPECT_EQ(FloatBitsToBFloat16Bits(0x3f818000), 0x3f82);
  // Just above / below the tie.
  EXPECT_EQ(FloatBitsToBFloat16Bits(0x3f808001), 0x3f81);
  EXPECT_EQ(FloatBitsToBFloat16Bits(0x3f807fff), 0x3f80);
  EXPECT_EQ(FloatBitsToBFloat16Bits(0x3f80ffff), 0x3f81);
  // Rounding carries into the exponent; the largest floats overflow to inf.
  EXPECT_EQ(FloatBitsToBFloat16Bits(0x3fffffff), 0x4000);
  EXPECT_EQ(FloatBitsToBFloat16Bits(0x7f7fffff), 0x7f80);
  EXPECT_EQ(FloatBitsToBFloat16Bits(0xff7fffff), 0xff80);
  // Signed zeros, infinities, denormals.
  EXPECT_EQ(FloatBitsToBFloat16Bits(0x80000000), 0x8000);
  EXPECT_EQ(FloatBitsToBFloat16Bits(0x7f800000), 0x7f80);
  EXPECT_EQ(FloatBitsToBFloat16Bits(0x00000001), 0x0000);
  EXPECT_EQ(FloatBitsToBFloat16Bits(0x00008000), 0x0000);  // tie to even
  EXPECT_EQ(FloatBitsToBFloat16Bits(0x00018000), 0x0002);  // tie to even
  // NaN stays NaN, even when only low payload bits are set.
  EXPECT_EQ(FloatBitsToBFloat16Bits(0x7fc00000), 0x7fc0);
  EXPECT_EQ(FloatBitsToBFloat16Bits(0x7f800001), 0x7fc0);
  EXPECT_EQ(FloatBitsToBFloat16Bits(0xff800001), 0xffc0);
  EXPECT_EQ(FloatBitsToBFloat16Bits(0x7fbfffff), 0x7fbf);
}

TEST(DTypeConversionTest, BFloat16ToFloatIsExactAndRoundTripsEveryPattern) {
  for (uint32_t b = 0; b <= 0xffff; ++b) {
    uint32_t f = FloatToBits(BFloat16BitsToFloat(static_cast<uint16_t>(b)));
    ASSERT_EQ(f, b << 16) << std::hex << b;
    ASSERT_EQ(FloatBitsToBFloat16Bits(f), b) << std::hex << b;
  }
}

// Checks that `rounded` (as a float) is the nearest neighbour of `x` among the
// values of the 16-bit format, with ties to the even pattern.
template <typename ToFloat>
void ExpectNearestEven(float x, uint16_t rounded, ToFloat to_float) {
  double v = to_float(rounded);
  double err = std::fabs(v - static_cast<double>(x));
  for (int step : {-1, 1}) {
    uint16_t other = static_cast<uint16_t>(rounded + step);
    if (((other ^ rounded) & 0x8000) != 0) continue;  // crossed the sign bit
    double w = to_float(other);
    if (std::isnan(w)) continue;
    double other_err = std::fabs(w - static_cast<double>(x));
    ASSERT_LE(err, other_err) << x << " rounded to " << std::hex << rounded;
    if (err == other_err) {
      ASSERT_EQ(rounded & 1, 0) << x << " tie not to even";
    }
  }
}

TEST(DTypeConversionTest, FloatToBFloat16MatchesNearestEvenOnRandomFloats) {
  std::mt19937_64 rng(20240611);
  for (int i = 0; i < 20000; ++i) {
    uint32_t bits = static_cast<uint32_t>(rng());
    float x = BitsToFloat(bits);
    uint16_t b = FloatBitsToBFloat16Bits(bits);
    if (std::isnan(x)) {
      ASSERT_TRUE(std::isnan(BFloat16BitsToFloat(b)));
      continue;
    }
    if (std::isinf(BFloat16BitsToFloat(b))) {
      // Only from infinities or at/past the midpoint between the largest
      // bf16 and 2^128 (a tie goes to the even pattern: inf).
      ASSERT_GE(std::fabs(x), std::ldexp(2.0f - std::ldexp(1.0f, -8), 127)) << x;
      continue;
    }
    ExpectNearestEven(x, b, [](uint16_t h) { return BFloat16BitsToFloat(h); });
  }
}

// Reference value of a binary16 pattern, computed independently.
double HalfReference(uint16_t h) {
  int sign = (h & 0x8000) ? -1 : 1;
  int exp = (h >> 10) & 0x1f;
  int mant = h & 0x3ff;
  if (exp == 0x1f) {
    return mant == 0 ? sign * std::numeric_limits<double>::infinity()
                     : std::numeric_limits<double>::quiet_NaN();
  }
  if (exp == 0) return sign * std::ldexp(static_cast<double>(mant), -24);
  return sign * std::ldexp(static_cast<double>(1024 + mant), exp - 25);
}

TEST(DTypeConversionTest, HalfToFloatKnownValues) {
  EXPECT_EQ(HalfBitsToFloat(0x3c00), 1.0f);
  EXPECT_EQ(HalfBitsToFloat(0xc000), -2.0f);
  EXPECT_EQ(HalfBitsToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(HalfBitsToFloat(0x3555), 0.333251953125f);
  EXPECT_EQ(HalfBitsToFloat(0x0400), std::ldexp(1.0f, -14));         // smallest normal
  EXPECT_EQ(HalfBitsToFloat(0x0001), std::ldexp(1.0f, -24));         // smallest subnormal
  EXPECT_EQ(HalfBitsToFloat(0x03ff), 1023 * std::ldexp(1.0f, -24));  // largest subnormal
  EXPECT_EQ(HalfBitsToFloat(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(HalfBitsToFloatBits(0x8000), 0x80000000u);  // -0.0
  EXPECT_EQ(HalfBitsToFloatBits(0x7c00), 0x7f800000u);
  EXPECT_EQ(HalfBitsToFloatBits(0xfc00), 0xff800000u);
  EXPECT_EQ(HalfBitsToFloatBits(0x7e00), 0x7fc00000u);
  EXPECT_EQ(HalfBitsToFloatBits(0x7c01), 0x7f802000u);  // payload kept
}

TEST(DTypeConversionTest, HalfToFloatIsExactAndRoundTripsEveryPattern) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    float f = HalfBitsToFloat(static_cast<uint16_t>(h));
    double want = HalfReference(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << h;
    } else {
      ASSERT_EQ(static_cast<double>(f), want) << std::hex << h;
      ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << std::hex << h;
    }
    ASSERT_EQ(FloatToHalfBits(f), h) << std::hex << h;
  }
}

TEST(DTypeConversionTest, FloatToHalfRoundsToNearestEven) {
  EXPECT_EQ(FloatToHalfBits(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalfBits(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalfBits(65519.996f), 0x7bff);
  EXPECT_EQ(FloatToHalfBits(65520.0f), 0x7c00);  // tie between 65504 and 2^16: even is inf
  EXPECT_EQ(FloatToHalfBits(-1e10f), 0xfc00);
  EXPECT_EQ(FloatToHalfBits(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie -> even
  EXPECT_EQ(FloatToHalfBits(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie -> even
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -25)), 0x0000);             // tie -> even (0)
  EXPECT_EQ(FloatToHalfBits(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(FloatToHalfBits(3 * std::ldexp(1.0f, -25)), 0x0002);  // tie -> even
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -25)), 0x0400);
  EXPECT_EQ(FloatBitsToHalfBits(0x00000001), 0x0000);  // float denormal
  EXPECT_EQ(FloatBitsToHalfBits(0x80000000), 0x8000);
  EXPECT_EQ(FloatBitsToHalfBits(0x7f800001), 0x7e00);  // NaN stays NaN
  EXPECT_EQ(FloatBitsToHalfBits(0xffc00000), 0xfe00);
}

TEST(DTypeConversionTest, FloatToHalfMatchesNearestEvenOnRandomFloats) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<float> exponent(-27.0f, 17.0f);
  for (int i = 0; i < 20000; ++i) {
    // Random magnitudes across the half range, random mantissa bits.
    float x = std::exp2(exponent(rng));
    uint32_t bits = (FloatToBits(x) & 0xff800000u) | (static_cast<uint32_t>(rng()) & 0x7fffffu);
    if (rng() & 1) bits |= 0x80000000u;
    x = BitsToFloat(bits);
    uint16_t h = FloatBitsToHalfBits(bits);
    if ((h & 0x7fff) == 0x7c00) {
      ASSERT_GE(std::fabs(x), 65520.0f) << x;
      continue;
    }
    ExpectNearestEven(x, h, [](uint16_t v) { return HalfReference(v); });
  }
}

// ---- ConvertDType -----------------------------------------------------------

TEST(ConvertDTypeTest, Float32ToBFloat16AndBack) {
  std::vector<uint32_t> f32 = {0x3f800000, 0x80000000, 0x7f800000, 0x7fc00000,
                               0x3f808000, 0x3f818000, 0x00000001};
  RawTensor t{"w", RawDType::kFloat32, {7}, Bytes32(f32)};
  absl::StatusOr<RawTensor> bf = ConvertDType(t, RawDType::kBFloat16);
  ASSERT_TRUE(bf.ok()) << bf.status();
  EXPECT_EQ(bf->name, "w");
  EXPECT_EQ(bf->dtype, RawDType::kBFloat16);
  EXPECT_EQ(bf->shape, t.shape);
  EXPECT_EQ(Halves(bf->bytes),
            (std::vector<uint16_t>{0x3f80, 0x8000, 0x7f80, 0x7fc0, 0x3f80, 0x3f82, 0x0000}));
  absl::StatusOr<RawTensor> back = ConvertDType(*bf, RawDType::kFloat32);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(Words(back->bytes), (std::vector<uint32_t>{0x3f800000, 0x80000000, 0x7f800000,
                                                       0x7fc00000, 0x3f800000, 0x3f820000, 0}));
}

TEST(ConvertDTypeTest, HalfAndBFloat16ConvertThroughFloat32) {
  RawTensor h{"h", RawDType::kFloat16, {2, 2}, Bytes16({0x3c00, 0x7bff, 0x0001, 0xfc00})};
  absl::StatusOr<RawTensor> bf = ConvertDType(h, RawDType::kBFloat16);
  ASSERT_TRUE(bf.ok()) << bf.status();
  // 65504 = 0x477fe000 rounds to 0x4780 (65536); 2^-24 is exact in bf16.
  EXPECT_EQ(Halves(bf->bytes), (std::vector<uint16_t>{0x3f80, 0x4780, 0x3380, 0xff80}));
  absl::StatusOr<RawTensor> h2 = ConvertDType(*bf, RawDType::kFloat16);
  ASSERT_TRUE(h2.ok()) << h2.status();
  // 65536 is past the half range: inf.
  EXPECT_EQ(Halves(h2->bytes), (std::vector<uint16_t>{0x3c00, 0x7c00, 0x0001, 0xfc00}));
  absl::StatusOr<RawTensor> f = ConvertDType(h, RawDType::kFloat32);
  ASSERT_TRUE(f.ok());
  absl::StatusOr<RawTensor> h3 = ConvertDType(*f, RawDType::kFloat16);
  ASSERT_TRUE(h3.ok());
  EXPECT_EQ(h3->bytes, h.bytes);
}

TEST(ConvertDTypeTest, SameDTypeCopies) {
  RawTensor t = PatternTensor("w", RawDType::kBFloat16, {5}, 3);
  absl::StatusOr<RawTensor> c = ConvertDType(t, RawDType::kBFloat16);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->bytes, t.bytes);
}

TEST(ConvertDTypeTest, WrongByteCountIsInvalidArgument) {
  RawTensor t{"layers.0.w", RawDType::kFloat32, {3}, std::string(10, '\0')};
  EXPECT_THAT(ConvertDType(t, RawDType::kBFloat16),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("layers.0.w"), HasSubstr("10 bytes"), HasSubstr("12"))));
  RawTensor neg{"neg", RawDType::kFloat32, {-1}, ""};
  EXPECT_THAT(ConvertDType(neg, RawDType::kBFloat16),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("negative")));
}

// ---- Write errors ----------------------------------------------------------

TEST(SafetensorsWriteTest, RejectsMalformedTensorsWithoutWriting) {
  std::string path = TempPath("never.safetensors");
  std::filesystem::remove(path);
  RawTensor bad{"w", RawDType::kFloat32, {2, 2}, std::string(15, '\0')};
  EXPECT_THAT(WriteSafetensors(path, {bad}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("'w'"), HasSubstr("15 bytes"), HasSubstr("16"))));
  RawTensor a = PatternTensor("a", RawDType::kFloat32, {1}, 0);
  EXPECT_THAT(WriteSafetensors(path, {a, a}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("more than once")));
  RawTensor meta = PatternTensor("__metadata__", RawDType::kFloat32, {1}, 0);
  EXPECT_THAT(WriteSafetensors(path, {meta}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("reserved")));
  RawTensor utf = PatternTensor(std::string("bad\xff", 4), RawDType::kFloat32, {1}, 0);
  EXPECT_THAT(WriteSafetensors(path, {utf}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("UTF-8")));
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(SafetensorsWriteTest, UnwritableDirectoryIsInternal) {
  EXPECT_THAT(WriteSafetensors(TempPath("no/such/dir/x.safetensors"), {}),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("no/such/dir")));
}

// ---- Read errors -----------------------------------------------------------

// Parses `header` + `data` in memory.
absl::StatusOr<std::vector<RawTensor>> ParseWith(const std::string& header,
                                                 const std::string& data = "") {
  return ParseSafetensors(SafetensorsBytes(header, data), "test.safetensors");
}

std::string Entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + R"(":{"dtype":)" + dtype + R"(,"shape":)" + shape + R"(,"data_offsets":)" +
         offsets + "}";
}

TEST(SafetensorsReadTest, MissingFileIsNotFound) {
  EXPECT_THAT(ReadSafetensors(TempPath("missing.safetensors")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.safetensors")));
}

TEST(SafetensorsReadTest, DirectoryIsInvalidArgument) {
  EXPECT_THAT(ReadSafetensors(::testing::TempDir()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a regular file")));
}

TEST(SafetensorsReadTest, TooShortFile) {
  std::string path = TempPath("short.safetensors");
  WriteFileBytes(path, "abc");
  EXPECT_THAT(ReadSafetensors(path), StatusIs(absl::StatusCode::kDataLoss,
                                              AllOf(HasSubstr(path), HasSubstr("too short"))));
}

TEST(SafetensorsReadTest, HeaderLengthLargerThanFile) {
  std::string path = TempPath("long_header.safetensors");
  WriteFileBytes(path, std::string("\xff\xff\x00\x00\x00\x00\x00\x00{}", 10));
  EXPECT_THAT(ReadSafetensors(path),
              StatusIs(absl::StatusCode::kDataLoss, AllOf(HasSubstr(path), HasSubstr("65535"),
                                                          HasSubstr("exceeds the file size"))));
  // The largest possible length must not wrap around.
  EXPECT_THAT(ParseSafetensors(std::string(8, '\xff') + "{}", "x"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("exceeds the file size")));
}

TEST(SafetensorsReadTest, HeaderOverTheLimitIsRejectedBeforeReading) {
  // A sparse file: large on paper, no disk used.
  std::string path = TempPath("huge_header.safetensors");
  uint64_t n = kMaxSafetensorsHeaderBytes + 1;
  std::string prefix;
  for (int i = 0; i < 8; ++i) prefix.push_back(static_cast<char>(n >> (8 * i)));
  WriteFileBytes(path, prefix);
  std::filesystem::resize_file(path, 8 + n);
  EXPECT_THAT(ReadSafetensors(path),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("100000000-byte limit")));
  std::filesystem::remove(path);
}

TEST(SafetensorsReadTest, HeaderNotJson) {
  EXPECT_THAT(ParseWith("{\"a\": nope}"),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("test.safetensors: header"), HasSubstr("not valid JSON"))));
  EXPECT_THAT(ParseWith(""), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("not valid JSON")));
}

TEST(SafetensorsReadTest, HeaderNotAnObject) {
  EXPECT_THAT(ParseWith("[1, 2]"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("expected a JSON object")));
  EXPECT_THAT(ParseWith("\"text\""),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("expected a JSON object")));
}

TEST(SafetensorsReadTest, EmptyHeaderObjectHasNoTensors) {
  absl::StatusOr<std::vector<RawTensor>> r = ParseWith("{}");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->empty());
}

TEST(SafetensorsReadTest, EntryFieldsMissing) {
  EXPECT_THAT(ParseWith(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", "abcd"),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("tensor 'w'"), HasSubstr("'dtype' missing"))));
  EXPECT_THAT(ParseWith(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", "abcd"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("'shape' missing")));
  EXPECT_THAT(ParseWith(R"({"w":{"dtype":"F32","shape":[1]}})", "abcd"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("'data_offsets' missing")));
  EXPECT_THAT(ParseWith(R"({"w":17})"),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("tensor 'w'"), HasSubstr("expected an object"))));
  EXPECT_THAT(ParseWith(R"({"w":{"dtype":5,"shape":[1],"data_offsets":[0,4]}})", "abcd"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("'dtype' is '5'")));
}

TEST(SafetensorsReadTest, BadShapes) {
  EXPECT_THAT(ParseWith("{" + Entry("w", "\"F32\"", "[-1]", "[0,4]") + "}", "abcd"),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("tensor 'w'"), HasSubstr("dimension 0 is '-1'"))));
  EXPECT_THAT(ParseWith("{" + Entry("w", "\"F32\"", "[1.5]", "[0,4]") + "}", "abcd"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("expected an integer from 0")));
  EXPECT_THAT(ParseWith("{" + Entry("w", "\"F32\"", "[1, \"2\"]", "[0,4]") + "}", "abcd"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("dimension 1")));
  EXPECT_THAT(ParseWith("{" + Entry("w", "\"F32\"", "4", "[0,4]") + "}", "abcd"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("expected an array")));
  EXPECT_THAT(ParseWith("{" + Entry("w", "\"F32\"", "[18446744073709551615]", "[0,4]") + "}"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("expected an integer from 0")));
  EXPECT_THAT(ParseWith("{" + Entry("w", "\"F32\"", "[1e3]", "[0,4]") + "}"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("expected an integer from 0")));
}

TEST(SafetensorsReadTest, ElementCountOverflow) {
  EXPECT_THAT(ParseWith("{" + Entry("w", "\"F32\"", "[4294967296, 4294967296]", "[0,0]") + "}"),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("tensor 'w'"), HasSubstr("2^63-1 bytes"))));
  // Fits in int64 elements, but not once multiplied by the dtype size.
  EXPECT_THAT(ParseWith("{" + Entry("w", "\"F32\"", "[4611686018427387904]", "[0,0]") + "}"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("2^63-1 bytes")));
}

TEST(SafetensorsReadTest, BadOffsets) {
  std::string four(4, 'x');
  EXPECT_THAT(
      ParseWith("{" + Entry("w", "\"F32\"", "[1]", "[0,8]") + "}", four),
      StatusIs(absl::StatusCode::kDataLoss, AllOf(HasSubstr("tensor 'w'"), HasSubstr("run past"))));
  EXPECT_THAT(ParseWith("{" + Entry("w", "\"F32\"", "[1]", "[4,0]") + "}", four),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("end before they begin")));
  EXPECT_THAT(ParseWith("{" + Entry("w", "\"F32\"", "[2]", "[0,4]") + "}", four),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("hold 4 bytes"), HasSubstr("needs 8"))));
  EXPECT_THAT(ParseWith("{" + Entry("w", "\"F32\"", "[1]", "[0]") + "}", four),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("expected [begin, end]")));
  EXPECT_THAT(ParseWith("{" + Entry("w", "\"F32\"", "[1]", "[-4,0]") + "}", four),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("expected [begin, end]")));
  EXPECT_THAT(ParseWith("{" + Entry("w", "\"F32\"", "[1]", "[18446744073709551615,3]") + "}", four),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("end before they begin")));
}

TEST(SafetensorsReadTest, OverlapsGapsAndTrailingBytes) {
  std::string eight(8, 'x');
  EXPECT_THAT(ParseWith("{" + Entry("a", "\"F32\"", "[2]", "[0,8]") + "," +
                            Entry("b", "\"F32\"", "[1]", "[4,8]") + "}",
                        eight),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("'a'"), HasSubstr("'b'"), HasSubstr("overlap"))));
  EXPECT_THAT(ParseWith("{" + Entry("a", "\"F32\"", "[1]", "[4,8]") + "}", eight),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("before tensor 'a'"), HasSubstr("belong to no tensor"))));
  EXPECT_THAT(ParseWith("{" + Entry("a", "\"F32\"", "[1]", "[0,4]") + "}", eight),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("last 4 bytes")));
  // Zero-sized tensors may share an offset with their neighbours.
  absl::StatusOr<std::vector<RawTensor>> ok = ParseWith(
      "{" + Entry("z", "\"BF16\"", "[0]", "[4,4]") + "," + Entry("a", "\"F32\"", "[1]", "[0,4]") +
          "," + Entry("b", "\"F32\"", "[1]", "[4,8]") + "}",
      eight);
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_EQ(ok->size(), 3u);
  EXPECT_EQ((*ok)[0].name, "a");
  EXPECT_EQ((*ok)[1].name, "z");
  EXPECT_EQ((*ok)[2].name, "b");
}

TEST(SafetensorsReadTest, DuplicateNames) {
  EXPECT_THAT(
      ParseWith("{" + Entry("w", "\"F32\"", "[1]", "[0,4]") + "," +
                    Entry("w", "\"F32\"", "[1]", "[4,8]") + "}",
                std::string(8, 'x')),
      StatusIs(absl::StatusCode::kDataLoss, AllOf(HasSubstr("'w'"), HasSubstr("more than once"))));
  // Duplicate keys inside an entry are caught too.
  EXPECT_THAT(
      ParseWith(R"({"w":{"dtype":"F32","dtype":"BF16","shape":[1],"data_offsets":[0,4]}})", "abcd"),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("'dtype' appears more than once")));
}

TEST(SafetensorsReadTest, MetadataMustBeAnObjectOfStrings) {
  EXPECT_THAT(ParseWith(R"({"__metadata__":[1]})"),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("__metadata__"), HasSubstr("object of strings"))));
  EXPECT_THAT(ParseWith(R"({"__metadata__":{"format":"pt","step":3}})"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("__metadata__ key 'step'")));
  absl::StatusOr<std::vector<RawTensor>> ok = ParseWith(R"({"__metadata__":{"format":"pt"}})");
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST(SafetensorsReadTest, UnsupportedAndUnknownDTypes) {
  for (const char* dtype : {"I8", "F64", "I64", "BOOL", "F8_E4M3"}) {
    EXPECT_THAT(
        ParseWith("{" + Entry("pos_ids", std::string("\"") + dtype + "\"", "[1]", "[0,1]") + "}",
                  "x"),
        StatusIs(
            absl::StatusCode::kInvalidArgument,
            AllOf(HasSubstr("tensor 'pos_ids'"), HasSubstr(dtype), HasSubstr("F32, BF16, F16"))))
        << dtype;
  }
  EXPECT_THAT(ParseWith("{" + Entry("w", "\"F7\"", "[1]", "[0,1]") + "}", "x"),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("tensor 'w'"), HasSubstr("unknown dtype 'F7'"))));
}

TEST(SafetensorsReadTest, DeepNestingIsRejected) {
  std::string deep = "{\"w\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_THAT(ParseWith(deep), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("nested deeper")));
  // Brackets inside strings do not count.
  std::string quoted = "{\"__metadata__\":{\"k\":\"" + std::string(100, '[') + "\\\"\"}}";
  EXPECT_TRUE(ParseWith(quoted).ok());
}

TEST(SafetensorsReadTest, LongNamesAreShortenedInMessages) {
  std::string name(5000, 'n');
  absl::Status s = ParseWith("{" + Entry(name, "\"F7\"", "[1]", "[0,1]") + "}", "x").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_LT(s.message().size(), 600u);
  EXPECT_THAT(std::string(s.message()), HasSubstr("(5000 bytes)"));
}

TEST(ParseCheckpointJsonTest, ReportsTopLevelKeysInFileOrder) {
  nlohmann::json j;
  std::vector<std::string> keys;
  ASSERT_TRUE(ParseCheckpointJson(R"({"z":1,"a":{"z":2},"m":[{"a":1}]})", "x", &j, &keys).ok());
  EXPECT_EQ(keys, (std::vector<std::string>{"z", "a", "m"}));
  // The same key in different objects is fine; within one object it is not.
  EXPECT_THAT(ParseCheckpointJson(R"({"a":[{"k":1},{"k":2,"k":3}]})", "cfg", &j),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("cfg"), HasSubstr("'k' appears more than once"))));
}

}  // namespace
}  // namespace rlpost
