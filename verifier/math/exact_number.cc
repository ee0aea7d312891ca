#include "verifier/math/exact_number.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <utility>

#include "verifier/math/latex_text.h"

namespace rlpost {
namespace math_internal {

namespace {

using UInt128 = unsigned __int128;

constexpr Int128 kInt128Max = static_cast<Int128>(~UInt128{0} >> 1);
constexpr Int128 kInt128Min = -kInt128Max - 1;

// Caps that keep parsing and the exact-decimal path cheap on hostile input.
constexpr size_t kMaxMantissaDigits = 1000;
constexpr int64_t kMaxExponent = 100000;
constexpr int kMaxNesting = 16;

UInt128 Magnitude(Int128 v) {
  // Callers never pass kInt128Min (Rational::Make rejects it).
  return v < 0 ? static_cast<UInt128>(-v) : static_cast<UInt128>(v);
}

UInt128 Gcd(UInt128 a, UInt128 b) {
  while (b != 0) {
    UInt128 t = a % b;
    a = b;
    b = t;
  }
  return a;
}

bool MulOverflows(Int128 a, Int128 b, Int128* out) { return __builtin_mul_overflow(a, b, out); }
bool AddOverflows(Int128 a, Int128 b, Int128* out) { return __builtin_add_overflow(a, b, out); }

}  // namespace

// ---------------------------------------------------------------------------
// Rational

std::optional<Rational> Rational::Make(Int128 num, Int128 den) {
  if (den == 0 || num == kInt128Min || den == kInt128Min) return std::nullopt;
  if (den < 0) {
    num = -num;
    den = -den;
  }
  UInt128 g = Gcd(Magnitude(num), Magnitude(den));
  if (g > 1) {
    num /= static_cast<Int128>(g);
    den /= static_cast<Int128>(g);
  }
  return Rational(num, den);
}

long double Rational::ToLongDouble() const {
  return static_cast<long double>(num_) / static_cast<long double>(den_);
}

std::optional<Rational> Rational::Add(const Rational& other) const {
  Int128 g = static_cast<Int128>(Gcd(Magnitude(den_), Magnitude(other.den_)));
  Int128 left, right, sum, den;
  if (MulOverflows(num_, other.den_ / g, &left) ||
      MulOverflows(other.num_, den_ / g, &right) || AddOverflows(left, right, &sum) ||
      MulOverflows(den_ / g, other.den_, &den)) {
    return std::nullopt;
  }
  return Make(sum, den);
}

std::optional<Rational> Rational::Divide(const Rational& other) const {
  if (other.num_ == 0) return std::nullopt;
  // Cancel across before multiplying so that fewer results overflow.
  Int128 g1 = static_cast<Int128>(Gcd(Magnitude(num_), Magnitude(other.num_)));
  Int128 g2 = static_cast<Int128>(Gcd(Magnitude(den_), Magnitude(other.den_)));
  if (g1 == 0) g1 = 1;
  Int128 num, den;
  if (MulOverflows(num_ / g1, other.den_ / g2, &num) ||
      MulOverflows(den_ / g2, other.num_ / g1, &den)) {
    return std::nullopt;
  }
  return Make(num, den);
}

// ---------------------------------------------------------------------------
// DecimalNumber

long double DecimalNumber::ToLongDouble() const {
  if (digits.empty()) return 0;
  std::string text = (negative ? "-" : "") + digits + "e" + std::to_string(exponent);
  return std::strtold(text.c_str(), nullptr);
}

namespace {

// The exact fraction for a canonical decimal, when numerator and
// denominator fit in 128 bits.
std::optional<Rational> DecimalToRational(const DecimalNumber& d) {
  if (d.digits.empty()) return Rational::Integer(0);
  if (d.digits.size() > 39) return std::nullopt;
  Int128 num = 0;
  for (char c : d.digits) {
    if (MulOverflows(num, 10, &num) || AddOverflows(num, c - '0', &num)) return std::nullopt;
  }
  Int128 den = 1;
  if (d.exponent >= 0) {
    if (d.exponent > 38) return std::nullopt;
    for (int64_t k = 0; k < d.exponent; ++k) {
      if (MulOverflows(num, 10, &num)) return std::nullopt;
    }
  } else {
    // den = 2^k 5^k; cancel the 2s and 5s of num first so that, e.g.,
    // 5^45 / 10^45 = 1 / 2^45 is still found exactly.
    int64_t k = -d.exponent;
    if (k > 127) return std::nullopt;  // den >= 2^k or 5^k after cancelling
    int64_t twos = k, fives = k;
    while (twos > 0 && num % 2 == 0) num /= 2, --twos;
    while (fives > 0 && num % 5 == 0) num /= 5, --fives;
    for (int64_t i = 0; i < twos; ++i) {
      if (MulOverflows(den, 2, &den)) return std::nullopt;
    }
    for (int64_t i = 0; i < fives; ++i) {
      if (MulOverflows(den, 5, &den)) return std::nullopt;
    }
  }
  if (d.negative) num = -num;
  return Rational::Make(num, den);
}

}  // namespace

// ---------------------------------------------------------------------------
// NumericValue

NumericValue NumericValue::FromRational(const Rational& r) {
  NumericValue v;
  v.kind_ = Kind::kRational;
  v.rational_ = r;
  return v;
}

NumericValue NumericValue::FromDecimal(DecimalNumber d) {
  if (std::optional<Rational> r = DecimalToRational(d)) return FromRational(*r);
  NumericValue v;
  v.kind_ = Kind::kDecimal;
  v.decimal_ = std::move(d);
  return v;
}

NumericValue NumericValue::FromApprox(long double value) {
  NumericValue v;
  v.kind_ = Kind::kApprox;
  v.approx_ = value;
  return v;
}

long double NumericValue::ToLongDouble() const {
  switch (kind_) {
    case Kind::kRational: return rational_->ToLongDouble();
    case Kind::kDecimal: return decimal_.ToLongDouble();
    case Kind::kApprox: return approx_;
  }
  return approx_;
}

bool NumericValue::is_zero() const {
  switch (kind_) {
    case Kind::kRational: return rational_->is_zero();
    case Kind::kDecimal: return decimal_.digits.empty();
    case Kind::kApprox: return approx_ == 0;
  }
  return false;
}

NumericValue NumericValue::Negate() const {
  NumericValue v = *this;
  switch (kind_) {
    case Kind::kRational: v.rational_ = rational_->Negate(); break;
    case Kind::kDecimal: v.decimal_.negative = !decimal_.digits.empty() && !decimal_.negative; break;
    case Kind::kApprox: v.approx_ = -approx_; break;
  }
  return v;
}

std::optional<NumericValue> NumericValue::Divide(const NumericValue& other) const {
  if (other.is_zero()) return std::nullopt;
  if (kind_ == Kind::kRational && other.kind_ == Kind::kRational) {
    if (std::optional<Rational> q = rational_->Divide(*other.rational_)) return FromRational(*q);
  }
  return FromApprox(ToLongDouble() / other.ToLongDouble());
}

NumericValue NumericValue::Add(const NumericValue& other) const {
  if (kind_ == Kind::kRational && other.kind_ == Kind::kRational) {
    if (std::optional<Rational> s = rational_->Add(*other.rational_)) return FromRational(*s);
  }
  return FromApprox(ToLongDouble() + other.ToLongDouble());
}

// ---------------------------------------------------------------------------
// Parsing

namespace {

// Recursive descent over the grammar in the header comment. Each method
// either consumes its construct and returns a value or returns nullopt (the
// caller then rejects the whole string; there is no backtracking, so parsing
// is linear).
class NumberParser {
 public:
  explicit NumberParser(std::string_view text) : text_(text) {}

  std::optional<NumericValue> ParseAll() {
    std::optional<NumericValue> v = ParseSigned();
    if (!v || pos_ != text_.size()) return std::nullopt;
    return v;
  }

 private:
  bool Eat(std::string_view token) {
    if (text_.substr(pos_, token.size()) != token) return false;
    pos_ += token.size();
    return true;
  }
  bool EatCommand(std::string_view command) {
    if (!CommandAt(text_, pos_, command)) return false;
    pos_ += command.size();
    return true;
  }
  bool AtDigit() const { return pos_ < text_.size() && IsAsciiDigit(text_[pos_]); }

  // [sign] (mixed number | factor ['/' [sign] factor])
  std::optional<NumericValue> ParseSigned() {
    if (++depth_ > kMaxNesting) return std::nullopt;
    bool negative = false;
    if (Eat("-")) {
      negative = true;
    } else {
      Eat("+");
    }
    std::optional<NumericValue> value = ParseMixedOrQuotient();
    --depth_;
    if (!value) return std::nullopt;
    return negative ? value->Negate() : *value;
  }

  std::optional<NumericValue> ParseMixedOrQuotient() {
    size_t start = pos_;
    std::optional<NumericValue> value = ParseFactor();
    if (!value) return std::nullopt;
    // "3\frac{1}{2}" is the mixed number 3 1/2 (the MATH convention), only
    // for a whole number followed by a proper fraction of whole numbers.
    if (CommandAt(text_, pos_, "\\frac")) {
      bool whole = pos_ > start && text_.substr(start, pos_ - start).find_first_not_of(
                                       "0123456789") == std::string_view::npos;
      if (!whole) return std::nullopt;
      std::optional<Rational> fraction = ParseProperFraction();
      if (!fraction || value->kind() != NumericValue::Kind::kRational) return std::nullopt;
      return value->Add(NumericValue::FromRational(*fraction));
    }
    if (Eat("/")) {
      bool negative = false;
      if (Eat("-")) {
        negative = true;
      } else {
        Eat("+");
      }
      std::optional<NumericValue> divisor = ParseFactor();
      if (!divisor) return std::nullopt;
      if (negative) divisor = divisor->Negate();
      return value->Divide(*divisor);
    }
    return value;
  }

  // \frac{a}{b} with whole numbers 0 <= a < b.
  std::optional<Rational> ParseProperFraction() {
    if (!EatCommand("\\frac")) return std::nullopt;
    std::optional<Int128> a, b;
    if (!Eat("{") || !(a = ParseWholeNumber()) || !Eat("}")) return std::nullopt;
    if (!Eat("{") || !(b = ParseWholeNumber()) || !Eat("}")) return std::nullopt;
    if (*b == 0 || *a >= *b) return std::nullopt;
    return Rational::Make(*a, *b);
  }

  std::optional<Int128> ParseWholeNumber() {
    if (!AtDigit()) return std::nullopt;
    Int128 v = 0;
    while (AtDigit()) {
      if (MulOverflows(v, 10, &v) || AddOverflows(v, text_[pos_] - '0', &v)) return std::nullopt;
      ++pos_;
    }
    return v;
  }

  // \frac{signed}{signed} | {signed} | decimal
  std::optional<NumericValue> ParseFactor() {
    if (EatCommand("\\frac")) {
      std::optional<NumericValue> num, den;
      if (!Eat("{") || !(num = ParseSigned()) || !Eat("}")) return std::nullopt;
      if (!Eat("{") || !(den = ParseSigned()) || !Eat("}")) return std::nullopt;
      return num->Divide(*den);
    }
    if (Eat("{")) {
      std::optional<NumericValue> inner = ParseSigned();
      if (!inner || !Eat("}")) return std::nullopt;
      return inner;
    }
    return ParseDecimal();
  }

  // digits[.digits] | .digits, then an optional exponent:
  // e[sign]digits | \times10^X | \cdot10^X, or "10^X" itself.
  std::optional<NumericValue> ParseDecimal() {
    std::string mantissa;
    int64_t fraction_digits = 0;
    size_t start = pos_;
    while (AtDigit()) mantissa.push_back(text_[pos_++]);
    bool has_point = Eat(".");
    if (has_point) {
      while (AtDigit()) {
        mantissa.push_back(text_[pos_++]);
        ++fraction_digits;
      }
    }
    if (mantissa.empty() || mantissa.size() > kMaxMantissaDigits) return std::nullopt;
    int64_t exponent = 0;
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      std::optional<int64_t> e = ParseExponentDigits();
      if (!e) return std::nullopt;
      exponent = *e;
    } else if (EatCommand("\\times") || EatCommand("\\cdot")) {
      if (!Eat("10^")) return std::nullopt;
      std::optional<int64_t> e = ParseScript();
      if (!e) return std::nullopt;
      exponent = *e;
    } else if (!has_point && text_.substr(start, pos_ - start) == "10" && Eat("^")) {
      std::optional<int64_t> e = ParseScript();
      if (!e) return std::nullopt;
      mantissa = "1";
      exponent = *e;
    }
    DecimalNumber d;
    size_t first = mantissa.find_first_not_of('0');
    if (first != std::string::npos) {
      size_t last = mantissa.find_last_not_of('0');
      d.digits = mantissa.substr(first, last - first + 1);
      d.exponent = exponent - fraction_digits + static_cast<int64_t>(mantissa.size() - 1 - last);
    }
    return NumericValue::FromDecimal(std::move(d));
  }

  // A superscript: one digit, or {[sign]digits}.
  std::optional<int64_t> ParseScript() {
    if (AtDigit()) return text_[pos_++] - '0';
    if (!Eat("{")) return std::nullopt;
    std::optional<int64_t> e = ParseExponentDigits();
    if (!e || !Eat("}")) return std::nullopt;
    return e;
  }

  // [sign]digits, at most kMaxExponent in magnitude.
  std::optional<int64_t> ParseExponentDigits() {
    bool negative = false;
    if (Eat("-")) {
      negative = true;
    } else {
      Eat("+");
    }
    if (!AtDigit()) return std::nullopt;
    int64_t e = 0;
    while (AtDigit()) {
      e = e * 10 + (text_[pos_++] - '0');
      if (e > kMaxExponent) return std::nullopt;
    }
    return negative ? -e : e;
  }

  std::string_view text_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

std::optional<NumericValue> ParseNumber(std::string_view normalized) {
  if (normalized.empty()) return std::nullopt;
  return NumberParser(normalized).ParseAll();
}

NumericMatch CompareNumbers(const NumericValue& a, const NumericValue& b,
                            double relative_tolerance) {
  using Kind = NumericValue::Kind;
  if (a.kind() == Kind::kRational && b.kind() == Kind::kRational) {
    return a.rational() == b.rational() ? NumericMatch::kExactEqual : NumericMatch::kExactDifferent;
  }
  if (a.kind() == Kind::kDecimal && b.kind() == Kind::kDecimal) {
    return a.decimal() == b.decimal() ? NumericMatch::kExactEqual : NumericMatch::kExactDifferent;
  }
  if (a.kind() != Kind::kApprox && b.kind() != Kind::kApprox) {
    // One fits a 128-bit fraction and the other does not: canonical forms
    // differ, so the values do.
    return NumericMatch::kExactDifferent;
  }
  long double x = a.ToLongDouble();
  long double y = b.ToLongDouble();
  if (!std::isfinite(x) || !std::isfinite(y)) return NumericMatch::kIncomparable;
  if (x == y) return NumericMatch::kWithinTolerance;
  long double scale = std::max(std::fabs(x), std::fabs(y));
  return std::fabs(x - y) <= static_cast<long double>(relative_tolerance) * scale
             ? NumericMatch::kWithinTolerance
             : NumericMatch::kOutsideTolerance;
}

}  // namespace math_internal
}  // namespace rlpost
