#pragma once
// How a program's stdout is compared with the expected output of a test case.
//
//   exact        byte for byte
//   trim         "\r\n" read as "\n", trailing spaces/tabs of every line and
//                leading/trailing blank lines ignored
//   tokens       the whitespace-separated tokens are equal
//   float:<tol>  tokens; two tokens that both parse as finite numbers match
//                when |a - b| <= tol * max(1, |b|) (b expected); others must
//                be equal strings
//
// Thread-safety: values and pure functions; safe from any thread.

#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace rlpost::code {

struct CompareMode {
  enum class Kind { kExact, kTrim, kTokens, kFloat };
  Kind kind = Kind::kTrim;
  double tolerance = 0;  // kFloat only
};

// InvalidArgument naming the `compare` field for an unknown mode or a bad
// tolerance.
absl::StatusOr<CompareMode> ParseCompareMode(absl::string_view text);

bool OutputMatches(const CompareMode& mode, absl::string_view actual, absl::string_view expected);

}  // namespace rlpost::code
