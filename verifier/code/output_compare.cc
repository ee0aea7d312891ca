#include "verifier/code/output_compare.h"

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace rlpost::code {
namespace {

std::string NormalizeTrim(absl::string_view text) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) {
      line.remove_suffix(1);
    }
    lines.emplace_back(line);
  }
  size_t first = 0;
  while (first < lines.size() && lines[first].empty()) ++first;
  size_t last = lines.size();
  while (last > first && lines[last - 1].empty()) --last;
  std::string out;
  for (size_t i = first; i < last; ++i) {
    if (i > first) out.push_back('\n');
    out += lines[i];
  }
  return out;
}

std::vector<absl::string_view> Tokens(absl::string_view text) {
  return absl::StrSplit(text, absl::ByAnyChar(" \t\r\n\f\v"), absl::SkipEmpty());
}

bool ParseFinite(absl::string_view token, double* value) {
  if (token.empty()) return false;
  std::string copy(token);
  char* end = nullptr;
  const double parsed = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || !std::isfinite(parsed)) return false;
  *value = parsed;
  return true;
}

}  // namespace

absl::StatusOr<CompareMode> ParseCompareMode(absl::string_view text) {
  CompareMode mode;
  if (text == "exact") {
    mode.kind = CompareMode::Kind::kExact;
  } else if (text == "trim" || text.empty()) {
    mode.kind = CompareMode::Kind::kTrim;
  } else if (text == "tokens") {
    mode.kind = CompareMode::Kind::kTokens;
  } else if (absl::StartsWith(text, "float:")) {
    mode.kind = CompareMode::Kind::kFloat;
    absl::string_view tol = text.substr(6);
    if (!ParseFinite(tol, &mode.tolerance) || mode.tolerance < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("compare: tolerance in '", text,
                       "' must be a finite number >= 0, e.g. float:1e-6"));
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "compare: unknown mode '", text, "'; use exact, trim, tokens or float:<tolerance>"));
  }
  return mode;
}

bool OutputMatches(const CompareMode& mode, absl::string_view actual, absl::string_view expected) {
  switch (mode.kind) {
    case CompareMode::Kind::kExact:
      return actual == expected;
    case CompareMode::Kind::kTrim:
      return NormalizeTrim(actual) == NormalizeTrim(expected);
    case CompareMode::Kind::kTokens:
      return Tokens(actual) == Tokens(expected);
    case CompareMode::Kind::kFloat: {
      const std::vector<absl::string_view> a = Tokens(actual);
      const std::vector<absl::string_view> b = Tokens(expected);
      if (a.size() != b.size()) return false;
      for (size_t i = 0; i < a.size(); ++i) {
        if (a[i] == b[i]) continue;
        double x, y;
        if (!ParseFinite(a[i], &x) || !ParseFinite(b[i], &y)) return false;
        if (!(std::fabs(x - y) <= mode.tolerance * std::fmax(1.0, std::fabs(y)))) return false;
      }
      return true;
    }
  }
  return false;
}

}  // namespace rlpost::code
