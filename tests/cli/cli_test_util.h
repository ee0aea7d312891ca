#pragma once
// Helpers for tests that run rlpost binaries as child processes.

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/subprocess.h"

namespace rlpost::testing {

inline std::string BinDir() {
  const char* dir = std::getenv("RLPOST_BIN_DIR");
  return dir == nullptr ? "" : dir;
}

inline std::string MakeTempDir(const std::string& prefix) {
  std::string pattern = "/tmp/" + prefix + "_XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) return "";
  return pattern;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct ProcessResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs argv to completion (at most `timeout`), output captured in `log`.
inline ProcessResult RunProcess(const std::vector<std::string>& argv, const std::string& log,
                                std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
  std::filesystem::remove(log);
  Subprocess p;
  ProcessResult r;
  if (!p.Start(argv, log).ok()) return r;
  if (!p.Wait(timeout)) p.Stop(std::chrono::milliseconds(1000));
  r.exit_code = p.exit_code();
  r.output = ReadFile(log);
  return r;
}

// Pids of live processes (other than this one) whose command line mentions
// `marker` (zombies excluded: they have an empty command line).
inline std::vector<int> ProcessesMentioning(const std::string& marker) {
  std::vector<int> pids;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return pids;
  while (dirent* e = readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == getpid()) continue;
    std::string cmdline = ReadFile("/proc/" + std::string(e->d_name) + "/cmdline");
    if (cmdline.find(marker) != std::string::npos) pids.push_back(static_cast<int>(pid));
  }
  closedir(proc);
  return pids;
}

}  // namespace rlpost::testing
