#pragma once
// rlctl: the operator CLI over the controller's control API. The whole
// command is a function so tests can run it in-process; rlctl_main.cc only
// forwards argv. Thread-compatible.

#include <ostream>
#include <string>
#include <vector>

#include "rlpost/v1/control.pb.h"

namespace rlpost {

// Exit statuses of rlctl (also listed by `rlctl --help`).
inline constexpr int kRlctlOk = 0;
inline constexpr int kRlctlRpcError = 1;     // the controller refused or failed the call
inline constexpr int kRlctlUsage = 2;        // bad arguments
inline constexpr int kRlctlUnreachable = 3;  // no controller answered at the address

// Runs `rlctl args...` (args excludes the program name): parses flags, calls
// the controller, prints to `out` (results) and `err` (errors), and returns
// the exit status. `env_addr` is the value of $RLCTL_ADDR ("" when unset).
int RunRlctl(const std::vector<std::string>& args, const std::string& env_addr,
             std::ostream& out, std::ostream& err);

// The multi-line human-readable form of a RunStatus that `rlctl status` prints.
std::string FormatRunStatus(const v1::RunStatus& status);
// One line per worker: role, address, weight version, health.
std::string FormatWorkers(const v1::RunStatus& status);

// "RUNNING" for RUN_STATE_RUNNING, and so on.
std::string RunStateName(v1::RunState state);

std::string RlctlUsage();

}  // namespace rlpost
