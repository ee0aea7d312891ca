#include "verifier/math/symbolic_equivalence.h"

#include <ginac/ginac.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <map>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "verifier/math/latex_text.h"

namespace rlpost {
namespace math_internal {

namespace {

using GiNaC::ex;
using GiNaC::numeric;
using Limits = SymbolicLimits;

// A parsed subexpression with upper estimates of how many terms it has once
// expanded (what normal() would pay for) and of its polynomial degree.
struct Value {
  ex e;
  double terms = 1;
  double degree = 0;
};

double Saturate(double v) { return std::min(v, 1e300); }

// Monomials of (t terms)^n: C(n+t-1, min(n, t-1)), in floating point.
double MultinomialTerms(double t, long n) {
  if (t <= 1) return 1;
  const double top = n + t - 1;
  const double k_max = std::min(static_cast<double>(n), t - 1);
  if (k_max > 400) return 1e300;
  double r = 1;
  for (double k = 1; k <= k_max; ++k) r = Saturate(r * (top - k_max + k) / k);
  return r;
}

// Recursive descent over normalised answer text; see the header for the
// accepted syntax. Every construct either parses within the budgets or the
// whole parse fails (no backtracking, so the work is linear in the input up
// to GiNaC's own work on each accepted operation).
class ExpressionParser {
 public:
  ExpressionParser(std::string_view text, std::map<std::string, GiNaC::symbol>* symbols)
      : text_(text), symbols_(symbols) {}

  std::optional<Value> ParseAll() {
    if (text_.empty() || text_.size() > Limits::kMaxInputBytes) return std::nullopt;
    std::optional<Value> v = ParseSum();
    if (!v || pos_ != text_.size()) return std::nullopt;
    return v;
  }

 private:
  // --- lexing helpers
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return AtEnd() ? '\0' : text_[pos_]; }
  void SkipSpace() {
    while (!AtEnd() && IsAsciiSpace(text_[pos_])) ++pos_;
  }
  bool Eat(char c) {
    SkipSpace();
    if (Peek() != c) return false;
    ++pos_;
    return true;
  }
  bool EatCommand(std::string_view command) {
    SkipSpace();
    if (!CommandAt(text_, pos_, command)) return false;
    pos_ += command.size();
    return true;
  }
  bool EatWord(std::string_view word) {  // plain-syntax name, e.g. "sqrt("
    SkipSpace();
    if (text_.substr(pos_, word.size()) != word) return false;
    size_t end = pos_ + word.size();
    if (end < text_.size() && IsAsciiAlpha(text_[end])) return false;
    pos_ = end;
    return true;
  }
  bool Spend() { return ++nodes_ <= Limits::kMaxNodes; }

  struct DepthGuard {
    explicit DepthGuard(int* d) : depth(d) { ++*depth; }
    ~DepthGuard() { --*depth; }
    int* depth;
  };
  bool TooDeep() const { return depth_ > Limits::kMaxDepth; }

  // --- grammar
  std::optional<Value> ParseSum() {
    DepthGuard guard(&depth_);
    if (TooDeep()) return std::nullopt;
    std::optional<Value> acc = ParseTerm();
    if (!acc) return std::nullopt;
    for (;;) {
      SkipSpace();
      int sign = 0;
      if (Eat('+')) {
        sign = 1;
      } else if (Eat('-')) {
        sign = -1;
      } else {
        break;
      }
      std::optional<Value> rhs = ParseTerm();
      if (!rhs || !Spend()) return std::nullopt;
      acc->e = sign > 0 ? acc->e + rhs->e : acc->e - rhs->e;
      acc->terms = Saturate(acc->terms + rhs->terms);
      acc->degree = std::max(acc->degree, rhs->degree);
    }
    return acc;
  }

  // Can the text at pos_ start a factor of an implicit product?
  bool AtImplicitFactor() {
    SkipSpace();
    if (AtEnd()) return false;
    char c = Peek();
    if (IsAsciiDigit(c) || IsAsciiAlpha(c) || c == '(' || c == '{' || c == '.') return true;
    if (c == '|') return abs_depth_ == 0;
    if (c == '\\') {
      for (std::string_view op : {"\\cdot", "\\times", "\\div", "\\right", "\\le", "\\ge",
                                  "\\ne", "\\lt", "\\gt", "\\pm", "\\mp", "\\in", "\\cup"}) {
        if (CommandAt(text_, pos_, op)) return false;
      }
      return pos_ + 1 < text_.size() && IsAsciiAlpha(text_[pos_ + 1]);
    }
    return false;
  }

  std::optional<Value> ParseTerm() {
    DepthGuard guard(&depth_);
    if (TooDeep()) return std::nullopt;
    std::optional<Value> acc = ParseUnary();
    if (!acc) return std::nullopt;
    for (;;) {
      SkipSpace();
      bool divide = false;
      if (Eat('*') || EatCommand("\\cdot") || EatCommand("\\times")) {
        if (Peek() == '*') return std::nullopt;  // "**" is handled in ParsePower
      } else if (Eat('/') || EatCommand("\\div")) {
        divide = true;
      } else if (!AtImplicitFactor()) {
        break;
      }
      std::optional<Value> rhs = ParseUnary();
      if (!rhs || !Spend()) return std::nullopt;
      if (divide) {
        if (rhs->e.is_zero()) return std::nullopt;
        acc->e = acc->e / rhs->e;
      } else {
        acc->e = acc->e * rhs->e;
      }
      acc->terms = Saturate(acc->terms * rhs->terms);
      acc->degree = Saturate(acc->degree + rhs->degree);
    }
    return acc;
  }

  std::optional<Value> ParseUnary() {
    DepthGuard guard(&depth_);
    if (TooDeep()) return std::nullopt;
    if (Eat('-')) {
      std::optional<Value> v = ParseUnary();
      if (!v || !Spend()) return std::nullopt;
      v->e = -v->e;
      return v;
    }
    if (Eat('+')) return ParseUnary();
    return ParsePower();
  }

  // postfix ['^' script | '**' unary]; right-associative.
  std::optional<Value> ParsePower() {
    std::optional<Value> base = ParsePostfix();
    if (!base) return std::nullopt;
    SkipSpace();
    std::optional<Value> exponent;
    if (Eat('^')) {
      exponent = ParseScript();
    } else if (text_.substr(pos_, 2) == "**") {
      pos_ += 2;
      exponent = ParseUnary();
    } else {
      return base;
    }
    if (!exponent || !Spend()) return std::nullopt;
    return Power(*base, *exponent);
  }

  // A superscript: {sum}, or one character / command group.
  std::optional<Value> ParseScript() {
    DepthGuard guard(&depth_);
    if (TooDeep()) return std::nullopt;
    SkipSpace();
    if (Eat('{')) {
      std::optional<Value> v = ParseSum();
      if (!v || !Eat('}')) return std::nullopt;
      return v;
    }
    if (Eat('-')) {
      std::optional<Value> v = ParseScript();
      if (!v) return std::nullopt;
      v->e = -v->e;
      return v;
    }
    if (IsAsciiDigit(Peek())) {
      Value v;
      v.e = numeric(Peek() - '0');
      ++pos_;
      return v;
    }
    return ParsePostfix();
  }

  std::optional<Value> ParsePostfix() {
    std::optional<Value> v = ParsePrimary();
    if (!v) return std::nullopt;
    while (Eat('!')) {
      if (!Spend()) return std::nullopt;
      if (GiNaC::is_a<numeric>(v->e)) {
        const numeric& n = GiNaC::ex_to<numeric>(v->e);
        if (!n.is_nonneg_integer() || n > Limits::kMaxFactorial) return std::nullopt;
      }
      v->e = GiNaC::factorial(v->e);
      v->terms = 1;
    }
    return v;
  }

  std::optional<Value> Power(const Value& base, const Value& exponent) {
    Value out;
    if (GiNaC::is_a<numeric>(exponent.e)) {
      const numeric& n = GiNaC::ex_to<numeric>(exponent.e);
      if (!n.is_rational()) return std::nullopt;
      const numeric p = n.numer();
      const numeric q = n.denom();
      if (GiNaC::abs(p) > Limits::kMaxExponent || q > Limits::kMaxExponent) return std::nullopt;
      const long p_abs = GiNaC::abs(p).to_long();
      if (GiNaC::is_a<numeric>(base.e)) {
        const numeric& b = GiNaC::ex_to<numeric>(base.e);
        if (!b.is_crational()) return std::nullopt;
        if (b.is_zero() && n.is_negative()) return std::nullopt;
        const numeric re = b.real(), im = b.imag();
        long bits = std::max(re.numer().int_length(), im.numer().int_length()) +
                    re.denom().int_length() + im.denom().int_length();
        if (static_cast<double>(bits) * p_abs > Limits::kMaxNumericPowerBits) return std::nullopt;
        out.terms = 1;
      } else if (n.is_integer()) {
        if (p_abs > Limits::kMaxSymbolicExponent) return std::nullopt;
        out.terms = MultinomialTerms(base.terms, p_abs);
        out.degree = Saturate(std::max(base.degree, 1.0) * p_abs);
        // GiNaC folds (x^64)^64 into x^4096; nested powers multiply.
        if (out.degree > Limits::kMaxDegree) return std::nullopt;
      } else {
        out.terms = 1;
        out.degree = std::max(base.degree, 1.0);
      }
    } else {
      out.terms = 1;
    }
    out.e = GiNaC::pow(base.e, exponent.e);
    return out;
  }

  // One argument of \frac, \sqrt, ...: {sum} or a single digit / letter /
  // command (\frac12 is normalised away, but \sqrt x may remain).
  std::optional<Value> ParseGroupArgument() {
    SkipSpace();
    if (Peek() == '{') {
      ++pos_;
      std::optional<Value> v = ParseSum();
      if (!v || !Eat('}')) return std::nullopt;
      return v;
    }
    return ParseScript();
  }

  // The argument of a function without parentheses: "\sin 2x" is sin(2x),
  // a product of factors up to the next operator.
  std::optional<Value> ParseFunctionArgument() {
    SkipSpace();
    if (Peek() == '(' || Peek() == '{') return ParsePostfix();
    std::optional<Value> acc = ParsePower();
    if (!acc) return std::nullopt;
    while (AtImplicitFactor() && Peek() != '\\') {
      std::optional<Value> rhs = ParsePower();
      if (!rhs || !Spend()) return std::nullopt;
      acc->e = acc->e * rhs->e;
      acc->terms = Saturate(acc->terms * rhs->terms);
      acc->degree = Saturate(acc->degree + rhs->degree);
    }
    return acc;
  }

  using UnaryFunction = ex (*)(const ex&);

  std::optional<Value> ApplyFunction(UnaryFunction f) {
    // "\sin^2x" is (\sin x)^2.
    std::optional<Value> power;
    if (Eat('^')) {
      power = ParseScript();
      if (!power) return std::nullopt;
    }
    std::optional<Value> arg = ParseFunctionArgument();
    if (!arg || !Spend()) return std::nullopt;
    Value v;
    v.e = f(arg->e);
    v.terms = 1;
    if (power) return Power(v, *power);
    return v;
  }

  static ex Sin(const ex& x) { return GiNaC::sin(x); }
  static ex Cos(const ex& x) { return GiNaC::cos(x); }
  static ex Tan(const ex& x) { return GiNaC::tan(x); }
  static ex Cot(const ex& x) { return 1 / GiNaC::tan(x); }
  static ex Sec(const ex& x) { return 1 / GiNaC::cos(x); }
  static ex Csc(const ex& x) { return 1 / GiNaC::sin(x); }
  static ex Asin(const ex& x) { return GiNaC::asin(x); }
  static ex Acos(const ex& x) { return GiNaC::acos(x); }
  static ex Atan(const ex& x) { return GiNaC::atan(x); }
  static ex Sinh(const ex& x) { return GiNaC::sinh(x); }
  static ex Cosh(const ex& x) { return GiNaC::cosh(x); }
  static ex Tanh(const ex& x) { return GiNaC::tanh(x); }
  static ex Ln(const ex& x) { return GiNaC::log(x); }
  static ex Exp(const ex& x) { return GiNaC::exp(x); }
  static ex Sqrt(const ex& x) { return GiNaC::sqrt(x); }
  static ex Abs(const ex& x) { return GiNaC::abs(x); }

  struct NamedFunction {
    std::string_view name;  // without the backslash
    UnaryFunction f;
  };
  static const std::vector<NamedFunction>& Functions() {
    static const std::vector<NamedFunction> kFunctions = {
        {"arcsin", Asin}, {"arccos", Acos}, {"arctan", Atan}, {"sinh", Sinh},
        {"cosh", Cosh},   {"tanh", Tanh},   {"sin", Sin},     {"cos", Cos},
        {"tan", Tan},     {"cot", Cot},     {"sec", Sec},     {"csc", Csc},
        {"ln", Ln},       {"exp", Exp},     {"sqrt", Sqrt},   {"abs", Abs}};
    return kFunctions;
  }

  std::optional<Value> Symbol(const std::string& name) {
    auto it = symbols_->find(name);
    if (it == symbols_->end()) it = symbols_->emplace(name, GiNaC::symbol(name)).first;
    Value v;
    v.e = it->second;
    v.degree = 1;
    return v;
  }

  // A variable with an optional subscript: a, a_1, x_{n}, \alpha_1.
  std::optional<Value> SubscriptedSymbol(std::string name) {
    if (Peek() != '_') return Symbol(name);
    ++pos_;
    size_t sub_start = pos_;
    if (Peek() == '{') {
      size_t close = FindClosingBrace(text_, pos_);
      if (close == kNoMatch) return std::nullopt;
      pos_ = close + 1;
    } else if (IsAsciiDigit(Peek()) || IsAsciiAlpha(Peek())) {
      ++pos_;
    } else {
      return std::nullopt;
    }
    return Symbol(name + "_" + std::string(text_.substr(sub_start, pos_ - sub_start)));
  }

  std::optional<Value> ParseCommand() {
    if (EatCommand("\\frac") || EatCommand("\\cfrac")) {
      std::optional<Value> num = ParseGroupArgument();
      if (!num) return std::nullopt;
      std::optional<Value> den = ParseGroupArgument();
      if (!den || den->e.is_zero()) return std::nullopt;
      num->e = num->e / den->e;
      num->terms = Saturate(num->terms * den->terms);
      num->degree = Saturate(num->degree + den->degree);
      return num;
    }
    if (EatCommand("\\sqrt")) {
      std::optional<Value> index;
      if (Eat('[')) {
        index = ParseSum();
        if (!index || !Eat(']')) return std::nullopt;
        if (index->e.is_zero()) return std::nullopt;
      }
      std::optional<Value> radicand = ParseGroupArgument();
      if (!radicand) return std::nullopt;
      Value exponent;
      exponent.e = index ? ex(1) / index->e : ex(numeric(1, 2));
      return Power(*radicand, exponent);
    }
    if (EatCommand("\\binom")) {
      std::optional<Value> n = ParseGroupArgument();
      if (!n) return std::nullopt;
      std::optional<Value> k = ParseGroupArgument();
      if (!k) return std::nullopt;
      if (!GiNaC::is_a<numeric>(n->e) || !GiNaC::is_a<numeric>(k->e)) return std::nullopt;
      const numeric& nn = GiNaC::ex_to<numeric>(n->e);
      const numeric& kk = GiNaC::ex_to<numeric>(k->e);
      if (!nn.is_nonneg_integer() || !kk.is_nonneg_integer() || nn > Limits::kMaxFactorial) {
        return std::nullopt;
      }
      Value v;
      v.e = GiNaC::binomial(nn, kk);
      return v;
    }
    if (EatCommand("\\pi")) {
      Value v;
      v.e = GiNaC::Pi;
      return v;
    }
    if (EatCommand("\\log")) {
      if (Eat('_')) {  // \log_b x = ln x / ln b
        std::optional<Value> base = ParseScript();
        if (!base) return std::nullopt;
        std::optional<Value> arg = ParseFunctionArgument();
        if (!arg || !Spend()) return std::nullopt;
        Value v;
        v.e = GiNaC::log(arg->e) / GiNaC::log(base->e);
        return v;
      }
      return ApplyFunction(Ln);
    }
    for (const NamedFunction& fn : Functions()) {
      std::string command = "\\" + std::string(fn.name);
      if (EatCommand(command)) return ApplyFunction(fn.f);
    }
    static const char* const kGreek[] = {
        "alpha", "beta",  "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta",
        "theta", "vartheta", "kappa", "lambda", "mu", "nu", "xi",   "rho",  "sigma",
        "tau",   "phi",   "varphi", "chi",  "psi",   "omega"};
    for (const char* name : kGreek) {
      if (EatCommand(std::string("\\") + name)) return SubscriptedSymbol(name);
    }
    return std::nullopt;  // \infty, \cup, \le, unknown commands: not ours
  }

  std::optional<Value> ParseNumber() {
    size_t start = pos_;
    while (!AtEnd() && IsAsciiDigit(Peek())) ++pos_;
    std::string digits(text_.substr(start, pos_ - start));
    size_t fraction = 0;
    if (Peek() == '.' && pos_ + 1 < text_.size() && IsAsciiDigit(text_[pos_ + 1])) {
      ++pos_;
      size_t fstart = pos_;
      while (!AtEnd() && IsAsciiDigit(Peek())) ++pos_;
      fraction = pos_ - fstart;
      digits += std::string(text_.substr(fstart, fraction));
    }
    if (digits.empty() || digits.size() > Limits::kMaxIntegerDigits) return std::nullopt;
    size_t first = digits.find_first_not_of('0');
    digits = first == std::string::npos ? "0" : digits.substr(first);
    Value v;
    // Decimals are exact rationals: 0.5x equals \frac{x}{2} symbolically.
    v.e = numeric(digits.c_str()) / GiNaC::pow(numeric(10), numeric(static_cast<long>(fraction)));
    return v;
  }

  std::optional<Value> ParsePrimary() {
    DepthGuard guard(&depth_);
    if (TooDeep() || !Spend()) return std::nullopt;
    SkipSpace();
    if (AtEnd()) return std::nullopt;
    char c = Peek();
    if (IsAsciiDigit(c) || (c == '.' && pos_ + 1 < text_.size() && IsAsciiDigit(text_[pos_ + 1]))) {
      return ParseNumber();
    }
    if (c == '(' || c == '{') {
      ++pos_;
      std::optional<Value> v = ParseSum();
      if (!v || !Eat(c == '(' ? ')' : '}')) return std::nullopt;
      return v;
    }
    if (c == '|') {
      ++pos_;
      ++abs_depth_;
      std::optional<Value> v = ParseSum();
      --abs_depth_;
      if (!v || !Eat('|')) return std::nullopt;
      v->e = GiNaC::abs(v->e);
      v->terms = 1;
      return v;
    }
    if (c == '\\') return ParseCommand();
    if (IsAsciiAlpha(c)) {
      // Plain-syntax names: sqrt(2), sin(x), pi, log(x).
      if (EatWord("pi")) {
        Value v;
        v.e = GiNaC::Pi;
        return v;
      }
      if (EatWord("log")) return ApplyFunction(Ln);
      for (const NamedFunction& fn : Functions()) {
        size_t save = pos_;
        if (EatWord(fn.name)) {
          SkipSpace();
          if (Peek() == '(') return ApplyFunction(fn.f);
          pos_ = save;
        }
      }
      // Words are text, not products of variables: "dad" must not equal
      // "add". Two-letter runs ("xy") are still products.
      size_t run = pos_;
      while (run < text_.size() && IsAsciiAlpha(text_[run])) ++run;
      if (run - pos_ > 2) return std::nullopt;
      ++pos_;
      if (c == 'e' && Peek() != '_') {
        Value v;
        v.e = GiNaC::exp(ex(1));
        return v;
      }
      if (c == 'i' && Peek() != '_') {
        Value v;
        v.e = GiNaC::I;
        return v;
      }
      return SubscriptedSymbol(std::string(1, c));
    }
    return std::nullopt;
  }

  std::string_view text_;
  std::map<std::string, GiNaC::symbol>* symbols_;
  size_t pos_ = 0;
  int nodes_ = 0;
  int depth_ = 0;
  int abs_depth_ = 0;
};

// Splits "lhs=rhs" at its only top-level '='; false when there is none or
// more than one.
bool SplitEquation(std::string_view text, std::string_view* lhs, std::string_view* rhs) {
  int depth = 0;
  size_t at = std::string_view::npos;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '(' || c == '{' || c == '[') ++depth;
    if (c == ')' || c == '}' || c == ']') --depth;
    if (c == '=' && depth == 0) {
      if (at != std::string_view::npos) return false;
      at = i;
    }
  }
  if (at == std::string_view::npos || at == 0 || at + 1 == text.size()) return false;
  *lhs = text.substr(0, at);
  *rhs = text.substr(at + 1);
  return true;
}

// Parses a side: an expression, or an equation as lhs - rhs.
std::optional<Value> ParseSide(std::string_view text, bool* is_equation,
                               std::map<std::string, GiNaC::symbol>* symbols) {
  std::string_view lhs, rhs;
  *is_equation = SplitEquation(text, &lhs, &rhs);
  if (!*is_equation) return ExpressionParser(text, symbols).ParseAll();
  std::optional<Value> l = ExpressionParser(lhs, symbols).ParseAll();
  if (!l) return std::nullopt;
  std::optional<Value> r = ExpressionParser(rhs, symbols).ParseAll();
  if (!r) return std::nullopt;
  l->e = l->e - r->e;
  l->terms = Saturate(l->terms + r->terms);
  return l;
}

// CLN floats have no inf/nan (overflow throws), so a numeric is finite.
bool IsFiniteNumeric(const ex& v) { return GiNaC::is_a<numeric>(v); }

// Numeric values of a and b at one point; nullopt when either is not a
// number there (a pole, an unknown function).
std::optional<std::pair<numeric, numeric>> EvaluateAt(const ex& a, const ex& b,
                                                      const GiNaC::exmap& point) {
  try {
    ex va = a.subs(point).evalf();
    ex vb = b.subs(point).evalf();
    if (!IsFiniteNumeric(va) || !IsFiniteNumeric(vb)) return std::nullopt;
    return std::make_pair(GiNaC::ex_to<numeric>(va), GiNaC::ex_to<numeric>(vb));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

bool Close(const numeric& x, const numeric& y, double relative_tolerance) {
  numeric diff = GiNaC::abs(x - y);
  if (diff.is_zero()) return true;
  numeric scale = std::max(GiNaC::abs(x), GiNaC::abs(y));
  // A floor far below any printed answer, for values that should be 0
  // (sin(\pi) evaluated to 30 digits).
  if (diff < numeric(1, 1000000) * numeric(1, 1000000) * numeric(1, 1000000)) return true;
  return diff <= numeric(relative_tolerance) * scale;
}

// Decides a - b == 0 (or, for equations, a / b constant).
SymbolicComparison Decide(const Value& a, const Value& b, bool equations,
                          const std::map<std::string, GiNaC::symbol>& symbols,
                          double relative_tolerance) {
  const ex difference = a.e - b.e;
  // normal() pays for the number of terms and, through coefficient growth
  // ((x-1)^{1000} has 300-digit coefficients), for the degree.
  if (a.terms + b.terms <= Limits::kMaxExpandedTerms &&
      a.degree + b.degree <= Limits::kMaxNormalDegree) {
    try {
      if (equations) {
        if (!b.e.is_zero()) {
          ex ratio = (a.e / b.e).normal();
          if (GiNaC::is_a<numeric>(ratio) && !ratio.is_zero()) {
            return {SymbolicMatch::kEqual, "equations equal up to a constant factor"};
          }
        }
      } else if (difference.normal().is_zero()) {
        return {SymbolicMatch::kEqual, "symbolically equal"};
      }
    } catch (const std::exception&) {
      // Division by zero inside normal(): fall through to evaluation.
    }
  }
  if (equations) return {SymbolicMatch::kUndecided, ""};
  std::mt19937_64 rng(20261122);
  std::uniform_int_distribution<int> pick(300, 2300);
  const int points = symbols.empty() ? 1 : Limits::kEvaluationPoints;
  int evaluated = 0;
  for (int attempt = 0; attempt < 3 * points && evaluated < points; ++attempt) {
    GiNaC::exmap point;
    for (const auto& [name, symbol] : symbols) point[symbol] = numeric(pick(rng), 1000);
    std::optional<std::pair<numeric, numeric>> values = EvaluateAt(a.e, b.e, point);
    if (!values) continue;
    ++evaluated;
    if (!Close(values->first, values->second, relative_tolerance)) {
      return {SymbolicMatch::kDifferent, "values differ numerically"};
    }
  }
  if (evaluated < points) return {SymbolicMatch::kUndecided, ""};
  return {SymbolicMatch::kEqual, symbols.empty() ? "equal numerically"
                                                 : "equal numerically at random points"};
}

SymbolicComparison CompareLocked(std::string_view a, std::string_view b,
                                 double relative_tolerance) {
  GiNaC::Digits = Limits::kEvaluationDigits;
  std::map<std::string, GiNaC::symbol> symbols;
  bool a_equation = false;
  bool b_equation = false;
  std::optional<Value> va = ParseSide(a, &a_equation, &symbols);
  if (!va) return {SymbolicMatch::kUndecided, ""};
  std::optional<Value> vb = ParseSide(b, &b_equation, &symbols);
  if (!vb) return {SymbolicMatch::kUndecided, ""};
  if (a_equation != b_equation) return {SymbolicMatch::kUndecided, ""};
  return Decide(*va, *vb, a_equation, symbols, relative_tolerance);
}

}  // namespace

absl::Mutex& SymbolicEngineMutex() {
  static absl::Mutex* mu = new absl::Mutex();
  return *mu;
}

SymbolicComparison CompareSymbolic(std::string_view a, std::string_view b,
                                   double relative_tolerance) {
  if (a.size() > Limits::kMaxInputBytes || b.size() > Limits::kMaxInputBytes) {
    return {SymbolicMatch::kUndecided, ""};
  }
  absl::MutexLock lock(&SymbolicEngineMutex());
  try {
    return CompareLocked(a, b, relative_tolerance);
  } catch (const std::exception&) {
    // GiNaC reports poles, division by zero and CLN overflow by throwing.
    return {SymbolicMatch::kUndecided, ""};
  }
}

bool ParsesAsSymbolic(std::string_view text) {
  if (text.size() > Limits::kMaxInputBytes) return false;
  absl::MutexLock lock(&SymbolicEngineMutex());
  try {
    std::map<std::string, GiNaC::symbol> symbols;
    bool equation = false;
    return ParseSide(text, &equation, &symbols).has_value();
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace math_internal
}  // namespace rlpost
