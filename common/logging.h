#pragma once
// Minimal line logger: RLPOST_LOG(INFO) << "text"; writes one line to stderr
// with a timestamp, the level and the process role. Thread-safe (one write per
// line).

#include <sstream>
#include <string>

namespace rlpost {

enum class LogLevel { kInfo, kWarning, kError };

// Sets the role printed in every line ("rollout", "learner[1]", ...).
void SetLogRole(const std::string& role);

class LogLine {
 public:
  LogLine(LogLevel level, const char* file, int line);
  ~LogLine();
  std::ostream& stream() { return out_; }

 private:
  LogLevel level_;
  std::ostringstream out_;
};

}  // namespace rlpost

#define RLPOST_LOG_INFO ::rlpost::LogLevel::kInfo
#define RLPOST_LOG_WARNING ::rlpost::LogLevel::kWarning
#define RLPOST_LOG_ERROR ::rlpost::LogLevel::kError
#define RLPOST_LOG(level) ::rlpost::LogLine(RLPOST_LOG_##level, __FILE__, __LINE__).stream()
