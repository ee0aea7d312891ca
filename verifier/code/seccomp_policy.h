#pragma once
// The seccomp filter every code-judge sandbox runs under, built with
// libseccomp and handed to bwrap (`--seccomp FD`) as a classic BPF program.
//
// Default allow; denied with EPERM: syscalls that only widen the kernel
// attack surface or escape the sandbox (mount family, ptrace, bpf, module and
// kexec loading, keyrings, namespaces: unshare/setns/clone with CLONE_NEW*,
// perf_event_open, userfaultfd, io_uring, reboot, swap, ...). socket() is
// allowed only for AF_UNIX (others fail with EAFNOSUPPORT); clone3 fails with
// ENOSYS so that libc falls back to clone(), whose flags can be inspected.
// Syscalls of other ABIs (i386, x32) kill the process.
//
// Thread-safety: a pure function; safe from any thread.

#include <string>

#include "absl/status/statusor.h"

namespace rlpost::code {

// The filter for the native architecture as raw `struct sock_filter` bytes.
absl::StatusOr<std::string> BuildSandboxSeccompFilter();

}  // namespace rlpost::code
