#include "cli/verify_command.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "cli/rlctl.h"
#include "common/grpc_util.h"
#include "common/tls.h"
#include "rlpost/v1/verifier.grpc.pb.h"

namespace rlpost {
namespace {

using nlohmann::json;

absl::Status LineError(int line_number, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": ", what));
}

// Reads an optional string field; a present non-string is an error.
absl::Status GetString(const json& obj, const char* key, int line_number, std::string* out,
                       bool required) {
  auto it = obj.find(key);
  if (it == obj.end()) {
    return required ? LineError(line_number, absl::StrCat("field '", key, "' missing"))
                    : absl::OkStatus();
  }
  if (!it->is_string()) {
    return LineError(line_number, absl::StrCat("field '", key, "' must be a string, got ",
                                               it->type_name()));
  }
  *out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status CheckKeys(const json& obj, const std::vector<std::string>& allowed,
                       const std::string& where, int line_number) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::find(allowed.begin(), allowed.end(), it.key()) == allowed.end()) {
      return LineError(line_number, absl::StrCat("unknown field '", it.key(), "'", where,
                                                 " (allowed: ", absl::StrJoin(allowed, ", "),
                                                 ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseLimits(const json& limits, int line_number, v1::CodeLimits* out) {
  if (!limits.is_object()) return LineError(line_number, "field 'limits' must be an object");
  if (absl::Status s = CheckKeys(limits,
                                 {"time_limit_s", "memory_limit_mb", "output_limit_bytes",
                                  "max_processes"},
                                 " in 'limits'", line_number);
      !s.ok()) {
    return s;
  }
  for (auto it = limits.begin(); it != limits.end(); ++it) {
    if (!it->is_number() || it->get<double>() <= 0) {
      return LineError(line_number, absl::StrCat("limits.", it.key(),
                                                 " must be a positive number, got ", it->dump()));
    }
    const double v = it->get<double>();
    if (it.key() == "time_limit_s") out->set_time_limit_s(v);
    if (it.key() == "memory_limit_mb") out->set_memory_limit_mb(static_cast<int32_t>(v));
    if (it.key() == "output_limit_bytes") out->set_output_limit_bytes(static_cast<int64_t>(v));
    if (it.key() == "max_processes") out->set_max_processes(static_cast<int32_t>(v));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::VerifyItem> ParseVerifyLine(const std::string& line, int line_number) {
  json obj = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (obj.is_discarded()) return LineError(line_number, "not valid JSON");
  if (!obj.is_object()) {
    return LineError(line_number, absl::StrCat("expected a JSON object, got ", obj.type_name()));
  }
  v1::VerifyItem item;
  std::string id = absl::StrCat("line-", line_number);
  if (auto it = obj.find("id"); it != obj.end() && it->is_number_integer()) {
    id = std::to_string(it->get<int64_t>());
  } else if (absl::Status s = GetString(obj, "id", line_number, &id, false); !s.ok()) {
    return s;
  }
  item.set_id(id);
  std::string kind;
  if (absl::Status s = GetString(obj, "kind", line_number, &kind, true); !s.ok()) return s;
  item.set_kind(kind);
  if (kind == "math") {
    if (absl::Status s = CheckKeys(obj, {"id", "kind", "gold", "response", "mode"}, "",
                                   line_number);
        !s.ok()) {
      return s;
    }
    std::string gold, response, mode;
    // A numeric gold answer (42) is accepted as its JSON text.
    if (auto it = obj.find("gold"); it != obj.end() && it->is_number()) {
      gold = it->dump();
    } else if (absl::Status s = GetString(obj, "gold", line_number, &gold, true); !s.ok()) {
      return s;
    }
    if (absl::Status s = GetString(obj, "response", line_number, &response, true); !s.ok()) {
      return s;
    }
    if (absl::Status s = GetString(obj, "mode", line_number, &mode, false); !s.ok()) return s;
    if (!mode.empty() && mode != "full_text" && mode != "answer_only") {
      return LineError(line_number, absl::StrCat("field 'mode' must be \"full_text\" or "
                                                 "\"answer_only\", got \"", mode, "\""));
    }
    item.set_reference(gold);
    item.set_response(response);
    item.set_mode(mode);
    return item;
  }
  if (kind == "code") {
    if (absl::Status s = CheckKeys(obj,
                                   {"id", "kind", "language", "code", "tests", "compare",
                                    "test_code", "entry_point", "limits"},
                                   "", line_number);
        !s.ok()) {
      return s;
    }
    v1::CodeItem* code = item.mutable_code();
    std::string language, text, compare, test_code, entry_point;
    if (absl::Status s = GetString(obj, "language", line_number, &language, true); !s.ok()) {
      return s;
    }
    if (language != "python" && language != "cpp") {
      return LineError(line_number, absl::StrCat("field 'language' must be \"python\" or "
                                                 "\"cpp\", got \"", language, "\""));
    }
    for (auto [key, target, required] :
         {std::tuple<const char*, std::string*, bool>{"code", &text, true},
          {"compare", &compare, false},
          {"test_code", &test_code, false},
          {"entry_point", &entry_point, false}}) {
      if (absl::Status s = GetString(obj, key, line_number, target, required); !s.ok()) return s;
    }
    code->set_language(language);
    code->set_code(text);
    code->set_compare(compare);
    code->set_test_code(test_code);
    code->set_entry_point(entry_point);
    if (auto it = obj.find("tests"); it != obj.end()) {
      if (!it->is_array()) return LineError(line_number, "field 'tests' must be an array");
      for (size_t i = 0; i < it->size(); ++i) {
        const json& t = (*it)[i];
        const std::string where = absl::StrCat("tests[", i, "]");
        if (!t.is_object()) return LineError(line_number, where + " must be an object");
        if (absl::Status s = CheckKeys(t, {"stdin", "expected_stdout"}, " in " + where,
                                       line_number);
            !s.ok()) {
          return s;
        }
        v1::CodeTest* test = code->add_tests();
        for (const char* key : {"stdin", "expected_stdout"}) {
          auto f = t.find(key);
          if (f != t.end() && !f->is_string()) {
            return LineError(line_number, absl::StrCat(where, ".", key, " must be a string"));
          }
        }
        test->set_stdin(t.value("stdin", ""));
        if (!t.contains("expected_stdout")) {
          return LineError(line_number, where + ".expected_stdout missing");
        }
        test->set_expected_stdout(t.value("expected_stdout", ""));
      }
    }
    if (code->tests_size() == 0 && test_code.empty()) {
      return LineError(line_number, "a code item needs 'tests' (non-empty) or 'test_code'");
    }
    if (auto it = obj.find("limits"); it != obj.end()) {
      if (absl::Status s = ParseLimits(*it, line_number, code->mutable_limits()); !s.ok()) {
        return s;
      }
    }
    return item;
  }
  return LineError(line_number,
                   absl::StrCat("field 'kind' must be \"math\" or \"code\", got \"", kind, "\""));
}

std::string FormatVerdictLine(const std::string& id, const v1::Verdict& verdict) {
  json line;
  line["id"] = id;
  line["verdict"] = verdict.verdict().empty() ? "error" : verdict.verdict();
  line["score"] = verdict.score();
  std::string detail = verdict.reason();
  if (!verdict.extracted().empty()) {
    detail = absl::StrCat("extracted \"", verdict.extracted(), "\"",
                          detail.empty() ? "" : "; ", detail);
  }
  line["detail"] = detail;
  line["latency_ms"] = verdict.latency_ms();
  return line.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string VerifyUsage() {
  return "usage: rlctl verify --addr HOST:PORT --input IN.jsonl [--output OUT.jsonl]\n"
         "                    [--deadline-ms N] [--max-in-flight N] [--timeout SECONDS]\n"
         "\n"
         "Judges every line of IN.jsonl with the rlpost-verifier at HOST:PORT and writes\n"
         "one JSON line per input line, in input order (stdout without --output):\n"
         "  {\"id\", \"verdict\", \"score\", \"detail\", \"latency_ms\"}\n"
         "Input lines:\n"
         "  {\"id\": \"..\", \"kind\": \"math\", \"gold\": \"..\", \"response\": \"..\",\n"
         "   \"mode\": \"full_text\"|\"answer_only\"}\n"
         "  {\"id\": \"..\", \"kind\": \"code\", \"language\": \"python\"|\"cpp\", \"code\": \"..\",\n"
         "   \"tests\": [{\"stdin\": \"..\", \"expected_stdout\": \"..\"}] or \"test_code\": \"..\",\n"
         "   \"entry_point\": \"..\", \"compare\": \"trim\", \"limits\": {\"time_limit_s\": 2,\n"
         "   \"memory_limit_mb\": 256, \"output_limit_bytes\": 1048576, \"max_processes\": 16}}\n"
         "A malformed line gets an `error` verdict naming the problem; the rest are judged.\n"
         "A summary (counts per verdict) goes to stderr.\n"
         "\n"
         "flags:\n"
         "  --deadline-ms N      per-item deadline on the verifier (default: its own)\n"
         "  --max-in-flight N    items sent but not yet answered (default 64)\n"
         "  --timeout SECONDS    deadline of the whole stream (default 3600)\n"
         "  --tls-ca FILE        call the verifier over TLS, verifying it with this CA\n"
         "  --tls-cert FILE, --tls-key FILE  client certificate (mutual TLS)\n";
}

namespace {

// The id of a line that failed to parse, when it has a readable one.
std::string IdOfLine(const std::string& line, int number) {
  json obj = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (obj.is_object()) {
    auto it = obj.find("id");
    if (it != obj.end() && it->is_string()) return it->get<std::string>();
    if (it != obj.end() && it->is_number_integer()) return std::to_string(it->get<int64_t>());
  }
  return absl::StrCat("line-", number);
}

// Items waiting for verdicts, shared by the sending and receiving threads.
class InFlightWindow {
 public:
  explicit InFlightWindow(int limit) : limit_(limit) {}
  // Blocks until fewer than `limit` items are in flight (or Close).
  bool Acquire() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](InFlightWindow* w) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return w->closed_ || w->in_flight_ < w->limit_;
        },
        this));
    if (closed_) return false;
    ++in_flight_;
    return true;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    --in_flight_;
  }
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }

 private:
  const int limit_;
  absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

int RunVerifyCommand(const std::vector<std::string>& args, std::ostream& out,
                     std::ostream& err) {
  std::map<std::string, std::string> flags = {{"addr", ""},        {"input", ""},
                                              {"output", ""},      {"deadline-ms", "0"},
                                              {"max-in-flight", "64"}, {"timeout", "3600"},
                                              {"tls-ca", ""},      {"tls-cert", ""},
                                              {"tls-key", ""}};
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      out << VerifyUsage();
      return kRlctlOk;
    }
    if (arg.rfind("--", 0) != 0) {
      err << "rlctl verify: unexpected argument '" << arg << "'\n" << VerifyUsage();
      return kRlctlUsage;
    }
    std::string name = arg.substr(2), value;
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      err << "rlctl verify: flag '--" << name << "' needs a value\n";
      return kRlctlUsage;
    }
    if (!flags.count(name)) {
      err << "rlctl verify: unknown flag '--" << name << "'\n" << VerifyUsage();
      return kRlctlUsage;
    }
    flags[name] = value;
  }
  if (flags["addr"].empty() || flags["input"].empty()) {
    err << "rlctl verify: --addr HOST:PORT and --input IN.jsonl are required\n" << VerifyUsage();
    return kRlctlUsage;
  }
  TlsFiles tls;
  tls.ca = flags["tls-ca"];
  tls.cert = flags["tls-cert"];
  tls.key = flags["tls-key"];
  if (absl::Status t = SetProcessTls(tls); !t.ok()) {
    err << "rlctl verify: " << t.message() << "\n";
    return kRlctlUsage;
  }
  int deadline_ms = 0, max_in_flight = 0;
  double timeout_s = 0;
  if (!absl::SimpleAtoi(flags["deadline-ms"], &deadline_ms) || deadline_ms < 0) {
    err << "rlctl verify: --deadline-ms must be an integer >= 0, got '" << flags["deadline-ms"]
        << "'\n";
    return kRlctlUsage;
  }
  if (!absl::SimpleAtoi(flags["max-in-flight"], &max_in_flight) || max_in_flight < 1) {
    err << "rlctl verify: --max-in-flight must be a positive integer, got '"
        << flags["max-in-flight"] << "'\n";
    return kRlctlUsage;
  }
  if (!absl::SimpleAtod(flags["timeout"], &timeout_s) || !(timeout_s > 0)) {
    err << "rlctl verify: --timeout must be a positive number of seconds, got '"
        << flags["timeout"] << "'\n";
    return kRlctlUsage;
  }
  std::ifstream input(flags["input"]);
  if (!input) {
    err << "rlctl verify: cannot read --input '" << flags["input"] << "'\n";
    return kRlctlUsage;
  }
  std::ofstream output_file;
  if (!flags["output"].empty()) {
    output_file.open(flags["output"], std::ios::trunc);
    if (!output_file) {
      err << "rlctl verify: cannot write --output '" << flags["output"] << "'\n";
      return kRlctlUsage;
    }
  }
  std::ostream& results = flags["output"].empty() ? out : output_file;

  // Every line gets a slot; parse errors are filled now, the rest by the
  // verifier. On the wire an item's id is its line index, so duplicate or
  // missing ids in the input cannot mix verdicts up.
  std::vector<std::string> ids;
  std::vector<std::optional<v1::Verdict>> verdicts;
  std::vector<v1::VerifyItem> items;
  std::vector<size_t> item_line;
  std::string line;
  for (int number = 1; std::getline(input, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank lines
    const size_t slot = ids.size();
    absl::StatusOr<v1::VerifyItem> item = ParseVerifyLine(line, number);
    if (!item.ok()) {
      ids.push_back(IdOfLine(line, number));
      v1::Verdict v;
      v.set_status(v1::VERDICT_STATUS_ERROR);
      v.set_verdict("error");
      v.set_reason(std::string(item.status().message()));
      verdicts.push_back(v);
      continue;
    }
    ids.push_back(item->id());
    verdicts.emplace_back();
    item->set_id(std::to_string(slot));
    if (deadline_ms > 0) item->set_deadline_ms(deadline_ms);
    items.push_back(*std::move(item));
    item_line.push_back(slot);
  }

  size_t printed = 0;
  std::map<std::string, int> counts;
  auto print_ready = [&] {
    while (printed < verdicts.size() && verdicts[printed].has_value()) {
      results << FormatVerdictLine(ids[printed], *verdicts[printed]) << "\n";
      ++counts[verdicts[printed]->verdict().empty() ? "error" : verdicts[printed]->verdict()];
      ++printed;
    }
    results.flush();
  };

  grpc::Status rpc = grpc::Status::OK;
  if (!items.empty()) {
    auto stub = v1::VerifierService::NewStub(MakeChannel(flags["addr"]));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
    auto stream = stub->VerifyStream(&context);
    InFlightWindow window(max_in_flight);
    std::thread sender([&] {
      for (const v1::VerifyItem& item : items) {
        if (!window.Acquire() || !stream->Write(item)) break;
      }
      stream->WritesDone();
    });
    v1::Verdict v;
    while (stream->Read(&v)) {
      window.Release();
      size_t index = 0;
      if (!absl::SimpleAtoi(v.id(), &index) || index >= verdicts.size() ||
          verdicts[index].has_value()) {
        continue;  // not ours; cannot happen with a well-behaved server
      }
      verdicts[index] = v;
      print_ready();
    }
    window.Close();
    sender.join();
    rpc = stream->Finish();
  }
  // Lines the verifier never answered (the stream failed) get the reason.
  for (size_t slot : item_line) {
    if (verdicts[slot].has_value()) continue;
    v1::Verdict v;
    v.set_status(v1::VERDICT_STATUS_ERROR);
    v.set_verdict("error");
    v.set_reason(absl::StrCat("no verdict: verifier stream ended with ",
                              absl::StatusCodeToString(
                                  static_cast<absl::StatusCode>(rpc.error_code())),
                              ": ", rpc.error_message()));
    verdicts[slot] = v;
  }
  print_ready();

  std::vector<std::string> parts;
  for (const auto& [word, n] : counts) parts.push_back(absl::StrCat(word, " ", n));
  err << "rlctl verify: " << verdicts.size() << " lines: " << absl::StrJoin(parts, ", ") << "\n";
  if (rpc.error_code() == grpc::StatusCode::UNAVAILABLE) {
    err << "rlctl verify: verifier at " << flags["addr"]
        << " unreachable: " << rpc.error_message() << "\n";
    return kRlctlUnreachable;
  }
  if (!rpc.ok()) {
    err << "rlctl verify: stream failed: " << rpc.error_message() << "\n";
    return kRlctlRpcError;
  }
  return kRlctlOk;
}

}  // namespace rlpost
