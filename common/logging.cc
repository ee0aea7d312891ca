#include "common/logging.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace rlpost {
namespace {

std::mutex& RoleMutex() {
  static std::mutex mu;
  return mu;
}
std::string& Role() {
  static std::string role = "rlpost";
  return role;
}

}  // namespace

void SetLogRole(const std::string& role) {
  std::lock_guard<std::mutex> lock(RoleMutex());
  Role() = role;
}

LogLine::LogLine(LogLevel level, const char* /*file*/, int /*line*/) : level_(level) {}

LogLine::~LogLine() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  localtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
  const char* tag = level_ == LogLevel::kInfo ? "I" : level_ == LogLevel::kWarning ? "W" : "E";
  std::string role;
  {
    std::lock_guard<std::mutex> lock(RoleMutex());
    role = Role();
  }
  std::string line = std::string(tag) + " " + stamp + " " + role + "] " + out_.str() + "\n";
  // One write() so concurrent lines never interleave.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace rlpost
