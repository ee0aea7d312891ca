#pragma once
// The --json / --quick flags shared by the rlpost-bench subcommands.

#include <cstdio>
#include <string>
#include <vector>

namespace rlpost::bench {

// False (after printing what is wrong) on an unknown flag.
inline bool ParseJsonQuickFlags(const std::vector<std::string>& args, const char* subcommand,
                                bool* json, bool* quick) {
  *json = false;
  *quick = false;
  for (const std::string& a : args) {
    if (a == "--json") {
      *json = true;
    } else if (a == "--quick") {
      *quick = true;
    } else {
      std::fprintf(stderr, "rlpost-bench %s: unknown flag '%s' (flags: --json, --quick)\n",
                   subcommand, a.c_str());
      return false;
    }
  }
  return true;
}

}  // namespace rlpost::bench
