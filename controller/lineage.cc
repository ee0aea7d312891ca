#include "controller/lineage.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace rlpost {
namespace {

namespace fs = std::filesystem;

// samples-NNNNN.jsonl files of `dir`, by number.
std::vector<std::pair<int, std::string>> LogFiles(const std::string& dir) {
  static const std::regex kName("samples-([0-9]{5,9})\\.jsonl");
  std::vector<std::pair<int, std::string>> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && std::regex_match(name, m, kName)) {
      files.emplace_back(std::stoi(m[1].str()), entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

using Key = std::tuple<int64_t, int64_t, int64_t, int64_t>;  // step, round, group, sample

std::string KeyText(const Key& k) {
  return absl::StrFormat("step %d round %d group %d sample %d", std::get<0>(k), std::get<1>(k),
                         std::get<2>(k), std::get<3>(k));
}

bool HasInts(const nlohmann::json& j, std::initializer_list<const char*> keys) {
  for (const char* k : keys) {
    if (!j.contains(k) || !j[k].is_number_integer()) return false;
  }
  return true;
}

// A used sample's lag: the learner's version when it trained on it minus
// the oldest version among its segments.
void CheckStaleness(const nlohmann::json& j, const Key& key, AuditReport* report) {
  if (!HasInts(j, {"learner_version", "max_staleness"}) || !j.contains("segments") ||
      !j["segments"].is_array() || j["segments"].empty()) {
    return;
  }
  int64_t oldest = j["learner_version"];
  for (const nlohmann::json& seg : j["segments"]) {
    if (seg.is_object() && seg.contains("version") && seg["version"].is_number_integer()) {
      oldest = std::min<int64_t>(oldest, seg["version"]);
    }
  }
  const int64_t lag = j["learner_version"].get<int64_t>() - oldest;
  const int64_t bound = j["max_staleness"];
  report->staleness_max = std::max(report->staleness_max, lag);
  report->staleness_bound = std::max(report->staleness_bound, bound);
  if (lag > bound) {
    ++report->stale;
    if (report->problems.size() < 20) {
      report->problems.push_back(absl::StrCat(KeyText(key), ": trained ", lag,
                                              " weight versions behind (bound ", bound, ")"));
    }
  }
}

}  // namespace

LineageLog::LineageLog(std::string dir, int64_t rotate_bytes, int next_index)
    : dir_(std::move(dir)), rotate_bytes_(rotate_bytes), next_index_(next_index) {}

absl::StatusOr<std::unique_ptr<LineageLog>> LineageLog::Open(const std::string& dir,
                                                             int64_t rotate_bytes) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create '", dir, "': ", ec.message()));
  const auto files = LogFiles(dir);
  const int next = files.empty() ? 0 : files.back().first + 1;
  std::unique_ptr<LineageLog> log(new LineageLog(dir, std::max<int64_t>(rotate_bytes, 1), next));
  absl::Status s = log->OpenNext();
  if (!s.ok()) return s;
  return log;
}

absl::Status LineageLog::OpenNext() {
  if (out_.is_open()) out_.close();
  path_ = (fs::path(dir_) / absl::StrFormat("samples-%05d.jsonl", next_index_++)).string();
  out_.open(path_, std::ios::out | std::ios::trunc);
  bytes_ = 0;
  if (!out_) return absl::InternalError(absl::StrCat("cannot write '", path_, "'"));
  return absl::OkStatus();
}

absl::Status LineageLog::Append(const nlohmann::ordered_json& record) {
  std::lock_guard<std::mutex> lock(mu_);
  if (bytes_ >= rotate_bytes_) {
    absl::Status s = OpenNext();
    if (!s.ok()) return s;
  }
  const std::string line = record.dump() + "\n";
  out_ << line;
  out_.flush();
  if (!out_) return absl::InternalError(absl::StrCat("cannot append to '", path_, "'"));
  bytes_ += static_cast<int64_t>(line.size());
  return absl::OkStatus();
}

nlohmann::ordered_json VersionSegments(const std::vector<int64_t>& token_versions) {
  nlohmann::ordered_json segments = nlohmann::ordered_json::array();
  for (size_t i = 0; i < token_versions.size();) {
    size_t j = i;
    while (j < token_versions.size() && token_versions[j] == token_versions[i]) ++j;
    segments.push_back({{"version", token_versions[i]}, {"tokens", j - i}});
    i = j;
  }
  return segments;
}

absl::StatusOr<AuditReport> AuditRun(const std::string& run_dir) {
  const std::string dir = (fs::path(run_dir) / "samples").string();
  if (!fs::is_directory(dir)) {
    return absl::NotFoundError(absl::StrCat(
        "no sample records: '", dir, "' does not exist (is '", run_dir, "' a run directory?)"));
  }
  // Lines in order; a resume marker drops what the interrupted attempt wrote
  // for steps after its checkpoint.
  struct Line {
    nlohmann::json j;
    std::string where;
  };
  std::vector<Line> lines;
  for (const auto& [index, path] : LogFiles(dir)) {
    std::ifstream in(path);
    std::string text;
    int64_t number = 0;
    while (std::getline(in, text)) {
      ++number;
      if (text.empty()) continue;
      const std::string where = absl::StrCat(path, ":", number);
      nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
        return absl::DataLossError(absl::StrCat(where, ": not a lineage record"));
      }
      const std::string type = j["type"];
      if (type == "resume") {
        if (!HasInts(j, {"after_step"})) {
          return absl::DataLossError(absl::StrCat(where, ": resume record without after_step"));
        }
        const int64_t after = j["after_step"];
        // A record belongs to the step it was written in ("at_step"; a
        // continued partial rollout is keyed by the earlier step it was
        // issued in).
        lines.erase(std::remove_if(lines.begin(), lines.end(),
                                   [&](const Line& l) {
                                     const nlohmann::json& at =
                                         l.j.contains("at_step") ? l.j["at_step"] : l.j["step"];
                                     return at.is_number_integer() && at.get<int64_t>() > after;
                                   }),
                    lines.end());
        continue;
      }
      if (type != "issued" && type != "sample" && type != "dropped") {
        return absl::DataLossError(absl::StrCat(where, ": unknown record type '", type, "'"));
      }
      if (!HasInts(j, {"step", "round", "group"}) ||
          (type == "issued" && !HasInts(j, {"n"})) ||
          (type == "sample" && (!HasInts(j, {"sample_index"}) || !j.contains("used")))) {
        return absl::DataLossError(absl::StrCat(where, ": ", type, " record lacks its key fields"));
      }
      lines.push_back({std::move(j), where});
    }
  }
  AuditReport report;
  std::map<Key, int> expected;  // issued sample keys -> times issued
  std::map<Key, int> recorded;
  std::set<std::tuple<int64_t, int64_t, int64_t>> dropped_groups;
  for (const Line& l : lines) {
    const int64_t step = l.j["step"], round = l.j["round"], group = l.j["group"];
    if (l.j["type"] == "dropped") {
      dropped_groups.insert({step, round, group});
    } else if (l.j["type"] == "issued") {
      for (int64_t s = 0; s < l.j["n"].get<int64_t>(); ++s) ++expected[{step, round, group, s}];
      report.issued += l.j["n"].get<int64_t>();
    } else {
      const Key key{step, round, group, l.j["sample_index"].get<int64_t>()};
      ++recorded[key];
      if (l.j["used"].is_boolean() && l.j["used"].get<bool>()) {
        ++report.used;
        CheckStaleness(l.j, key, &report);
      }
    }
  }
  auto note = [&](const std::string& line) {
    if (report.problems.size() < 20) report.problems.push_back(line);
  };
  report.samples = static_cast<int64_t>(recorded.size());
  for (const auto& [key, times] : expected) {
    if (times > 1) {
      report.duplicated += times - 1;
      note(absl::StrCat(KeyText(key), ": issued ", times, " times"));
    }
    auto it = recorded.find(key);
    if (it == recorded.end() &&
        dropped_groups.count({std::get<0>(key), std::get<1>(key), std::get<2>(key)}) > 0) {
      ++report.dropped;  // a straggler group cut off at its deadline: accounted for
      continue;
    }
    if (it == recorded.end()) {
      ++report.lost;
      note(absl::StrCat(KeyText(key), ": lost (issued, never recorded)"));
    }
  }
  for (const auto& [key, times] : recorded) {
    if (times > 1) {
      report.duplicated += times - 1;
      note(absl::StrCat(KeyText(key), ": recorded ", times, " times"));
    }
    if (expected.find(key) == expected.end()) {
      ++report.duplicated;
      note(absl::StrCat(KeyText(key), ": recorded but never issued"));
    }
  }
  return report;
}

}  // namespace rlpost
