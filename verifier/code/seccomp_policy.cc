#include "verifier/code/seccomp_policy.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace rlpost::code {
namespace {

// Denied outright. Names unknown to the running libseccomp are skipped.
constexpr const char* kDeniedSyscalls[] = {
    "acct", "add_key", "bpf", "chroot", "delete_module", "finit_module", "fsconfig",
    "fsmount", "fsopen", "fspick", "init_module", "io_uring_enter", "io_uring_register",
    "io_uring_setup", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie",
    "mount", "mount_setattr", "move_mount", "name_to_handle_at", "open_by_handle_at",
    "open_tree", "perf_event_open", "pivot_root", "process_vm_readv", "process_vm_writev",
    "ptrace", "quotactl", "reboot", "request_key", "setns", "swapoff", "swapon",
    "syslog", "umount", "umount2", "unshare", "userfaultfd", "vhangup",
};

constexpr unsigned kNamespaceFlags[] = {
    CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
    CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
#ifdef CLONE_NEWTIME
    CLONE_NEWTIME,
#endif
};

absl::Status Check(int rc, const char* what) {
  if (rc == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("libseccomp: ", what, ": ", std::strerror(-rc)));
}

class FilterContext {
 public:
  FilterContext() : ctx_(seccomp_init(SCMP_ACT_ALLOW)) {}
  ~FilterContext() {
    if (ctx_ != nullptr) seccomp_release(ctx_);
  }
  FilterContext(const FilterContext&) = delete;
  FilterContext& operator=(const FilterContext&) = delete;
  scmp_filter_ctx get() const { return ctx_; }

 private:
  scmp_filter_ctx ctx_;
};

}  // namespace

absl::StatusOr<std::string> BuildSandboxSeccompFilter() {
  FilterContext filter;
  if (filter.get() == nullptr) return absl::InternalError("libseccomp: seccomp_init failed");
  scmp_filter_ctx ctx = filter.get();
  // Other ABIs than the native one are killed (the default bad-arch action);
  // no_new_privs is left to bwrap, which sets it before loading the filter.
  if (absl::Status s = Check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0), "attr nnp");
      !s.ok()) {
    return s;
  }
  for (const char* name : kDeniedSyscalls) {
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;
    if (absl::Status s = Check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0), name);
        !s.ok()) {
      return s;
    }
  }
  const int clone3 = seccomp_syscall_resolve_name("clone3");
  if (clone3 != __NR_SCMP_ERROR) {
    if (absl::Status s = Check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), clone3, 0), "clone3");
        !s.ok()) {
      return s;
    }
  }
  for (unsigned flag : kNamespaceFlags) {
    if (absl::Status s =
            Check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                   SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)),
                  "clone flags");
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = Check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket),
                                              1, SCMP_A0(SCMP_CMP_NE, AF_UNIX)),
                             "socket");
      !s.ok()) {
    return s;
  }

  const int fd = memfd_create("rlpost-seccomp", MFD_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("memfd_create: ", std::strerror(errno)));
  absl::Status exported = Check(seccomp_export_bpf(ctx, fd), "export bpf");
  std::string program;
  if (exported.ok()) {
    const off_t size = lseek(fd, 0, SEEK_END);
    program.resize(size > 0 ? static_cast<size_t>(size) : 0);
    if (size <= 0 || pread(fd, program.data(), program.size(), 0) != size) {
      exported = absl::InternalError("reading the exported seccomp filter failed");
    }
  }
  close(fd);
  if (!exported.ok()) return exported;
  return program;
}

}  // namespace rlpost::code
