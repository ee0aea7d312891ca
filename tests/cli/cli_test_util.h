#pragma once
// Helpers for tests that run rlpost binaries as child processes.

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
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

// The source tree (configs/), from RLPOST_SOURCE_DIR as ctest sets it.
inline std::string SourceDir() {
  const char* d = std::getenv("RLPOST_SOURCE_DIR");
  return d ? d : ".";
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

// Sends `request` to 127.0.0.1:port and returns everything the server sends
// back before closing ("" when nothing answers).
inline std::string HttpExchange(int port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "";
  }
  ::send(fd, request.data(), request.size(), 0);
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return response;
}

// GET http://127.0.0.1:port{path}: the whole response (status line, headers,
// body).
inline std::string HttpGet(int port, const std::string& path) {
  return HttpExchange(port, "GET " + path + " HTTP/1.0\r\n\r\n");
}

// The value of the sample `series` (name plus rendered labels, exactly as
// exposed) in Prometheus text, or -1 when absent.
inline double MetricValue(const std::string& text, const std::string& series) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::strtod(line.c_str() + series.size() + 1, nullptr);
    }
  }
  return -1;
}

}  // namespace rlpost::testing
