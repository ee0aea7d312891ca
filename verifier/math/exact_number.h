#pragma once
// Numeric answers held exactly where possible: a reduced fraction of 128-bit
// integers, or, for decimals too large for that, the decimal digits and a
// power of ten (exact without a bignum library). Anything else numeric (a
// fraction of huge numbers) falls back to a long double approximation that
// is compared with a relative tolerance. Internal to verifier/math.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rlpost {
namespace math_internal {

using Int128 = __int128;

// A reduced fraction num/den with den > 0. Arithmetic reports overflow as
// nullopt instead of wrapping.
class Rational {
 public:
  // nullopt when den == 0.
  static std::optional<Rational> Make(Int128 num, Int128 den);
  static Rational Integer(Int128 value) { return Rational(value, 1); }

  Int128 num() const { return num_; }
  Int128 den() const { return den_; }
  bool is_zero() const { return num_ == 0; }
  long double ToLongDouble() const;

  std::optional<Rational> Add(const Rational& other) const;
  std::optional<Rational> Divide(const Rational& other) const;  // nullopt on x/0 too
  Rational Negate() const { return Rational(-num_, den_); }

  bool operator==(const Rational& other) const {
    return num_ == other.num_ && den_ == other.den_;
  }

 private:
  Rational(Int128 num, Int128 den) : num_(num), den_(den) {}
  Int128 num_;
  Int128 den_;
};

// ±digits × 10^exponent, canonical: no leading or trailing zeros in
// `digits`, zero is empty digits and not negative. Equal values have equal
// representations, so equality is member-wise.
struct DecimalNumber {
  bool negative = false;
  std::string digits;
  int64_t exponent = 0;

  bool operator==(const DecimalNumber& other) const {
    return negative == other.negative && digits == other.digits && exponent == other.exponent;
  }
  long double ToLongDouble() const;
};

class NumericValue {
 public:
  enum class Kind { kRational, kDecimal, kApprox };

  static NumericValue FromRational(const Rational& r);
  // Uses the rational form whenever the value fits one; this canonical choice
  // is what lets the comparison treat a kRational and a kDecimal as unequal.
  static NumericValue FromDecimal(DecimalNumber d);
  static NumericValue FromApprox(long double value);

  Kind kind() const { return kind_; }
  const Rational& rational() const { return *rational_; }
  const DecimalNumber& decimal() const { return decimal_; }
  long double ToLongDouble() const;
  bool is_zero() const;

  NumericValue Negate() const;
  // nullopt on division by zero.
  std::optional<NumericValue> Divide(const NumericValue& other) const;
  NumericValue Add(const NumericValue& other) const;

 private:
  Kind kind_ = Kind::kApprox;
  std::optional<Rational> rational_;
  DecimalNumber decimal_;
  long double approx_ = 0;
};

// Parses a normalised answer that is a single number: integers, decimals
// (".5"), scientific notation ("1.5e-3", "1.5\times10^{3}", "10^{6}"),
// fractions ("\frac{a}{b}", "a/b", nested), mixed numbers ("3\frac{1}{2}")
// and a leading sign. nullopt for anything else, for division by zero and for
// numbers past the size caps (1000 digits, exponent magnitude 100000).
std::optional<NumericValue> ParseNumber(std::string_view normalized);

enum class NumericMatch {
  kExactEqual,
  kExactDifferent,
  kWithinTolerance,
  kOutsideTolerance,
  kIncomparable,  // an approximation overflowed (inf/nan)
};

NumericMatch CompareNumbers(const NumericValue& a, const NumericValue& b,
                            double relative_tolerance);

}  // namespace math_internal
}  // namespace rlpost
