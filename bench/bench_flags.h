#pragma once
// The --json / --quick (and --device) flags shared by the rlpost-bench
// subcommands.

#include <cstdio>
#include <string>
#include <vector>

namespace rlpost::bench {

// False (after printing what is wrong) on an unknown flag. With `device`
// non-null the subcommand also takes --device DEVICE (cpu, cuda, cuda:N;
// default cpu), where its models run.
inline bool ParseJsonQuickFlags(const std::vector<std::string>& args, const char* subcommand,
                                bool* json, bool* quick, std::string* device = nullptr) {
  *json = false;
  *quick = false;
  if (device != nullptr) *device = "cpu";
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--json") {
      *json = true;
    } else if (a == "--quick") {
      *quick = true;
    } else if (device != nullptr && a == "--device" && i + 1 < args.size()) {
      *device = args[++i];
    } else {
      std::fprintf(stderr, "rlpost-bench %s: unknown flag '%s' (flags: --json, --quick%s)\n",
                   subcommand, a.c_str(), device != nullptr ? ", --device DEVICE" : "");
      return false;
    }
  }
  return true;
}

}  // namespace rlpost::bench
