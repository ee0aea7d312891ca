// rlctl: operator CLI over the controller's control API. See `rlctl --help`.

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "cli/rlctl.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const char* env = std::getenv("RLCTL_ADDR");
  return rlpost::RunRlctl(args, env == nullptr ? "" : env, std::cout, std::cerr);
}
