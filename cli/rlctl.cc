#include "cli/rlctl.h"

#include <google/protobuf/util/json_util.h>

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <sstream>
#include <fstream>
#include <functional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "cli/generate_command.h"
#include "cli/health_command.h"
#include "cli/verify_command.h"
#include "common/bearer_token.h"
#include "common/grpc_util.h"
#include "common/tls.h"
#include "nlohmann/json.hpp"
#include "rlpost/v1/control.grpc.pb.h"

namespace rlpost {
namespace {

std::string Percent(double fraction) { return absl::StrFormat("%.1f%%", 100.0 * fraction); }

bool EvaluatedBefore(v1::RunState state) {
  return state == v1::RUN_STATE_RUNNING || state == v1::RUN_STATE_PAUSED ||
         state == v1::RUN_STATE_STOPPING || state == v1::RUN_STATE_FINISHED;
}

}  // namespace

std::string RunStateName(v1::RunState state) {
  std::string name = v1::RunState_Name(state);
  const std::string prefix = "RUN_STATE_";
  return absl::StartsWith(name, prefix) ? name.substr(prefix.size()) : name;
}

std::string RlctlUsage() {
  return "usage: rlctl [--addr HOST:PORT] [--timeout SECONDS] [-o table|json] COMMAND\n"
         "\n"
         "Operator CLI for a running rlpost controller (the address is printed by\n"
         "`rlpost train` and by rlpost-controller at start).\n"
         "\n"
         "commands (status, pause, resume, stop and checkpoint may also be given as\n"
         "`run status`, `run pause`, ...):\n"
         "  status   run name, state, step, weight version, metrics and workers\n"
         "  pause    finish the current step, then wait (idempotent)\n"
         "  resume   continue a paused run\n"
         "  stop     finish the current step, evaluate, write the summary, end the run\n"
         "  checkpoint  save a checkpoint (learner state, data cursor) after the current\n"
         "           step into runs/<name>/checkpoints; `run.resume=true` restarts from it\n"
         "  config show  the run's resolved config as YAML (every key)\n"
         "  workers list       the run's workers: role, address, version, health\n"
         "  workers drain ADDR take a rollout worker out of service before the next step\n"
         "  metrics [--last N] the run's per-step metrics (default: the last 20 steps)\n"
         "  run submit --config FILE [--rollout A,B --verifier V --learner L] [key=value ...]\n"
         "           start a run on a controller that has none running (the addresses\n"
         "           default to the controller's own flags)\n"
         "  verify   judge a JSONL file with an rlpost-verifier (rlctl verify --help)\n"
         "  health   whether a server (any rlpost process) is serving: exit 0 if so\n"
         "           (rlctl health --help)\n"
         "  generate sample completions of a prompt from an rlpost-rollout worker\n"
         "           (rlctl generate --help)\n"
         "\n"
         "flags:\n"
         "  --addr HOST:PORT    controller address (default: $RLCTL_ADDR)\n"
         "  --timeout SECONDS   deadline of the call (default 10)\n"
         "  --token-file FILE   bearer token for a controller started with --token-file\n"
         "  --tls-ca FILE       call the controller over TLS, verifying it with this CA\n"
         "  --tls-cert FILE, --tls-key FILE  client certificate (mutual TLS)\n"
         "                      (pause, resume, stop, checkpoint need it there)\n"
         "  -o table|json       output of status, pause, resume, stop, checkpoint: a\n"
         "                      table (default) or the RunStatus message as JSON\n"
         "\n"
         "exit status:\n"
         "  0  success\n"
         "  1  the controller refused or failed the request (message on stderr),\n"
         "     e.g. pause when no run is loaded or the run has ended\n"
         "  2  usage error\n"
         "  3  controller unreachable at the address (or no answer within --timeout)\n";
}

std::string FormatMetrics(const v1::StepMetricsList& m, bool json) {
  if (json) {
    // A JSON array of the step objects.
    std::string out = "[";
    for (int i = 0; i < m.steps_json_size(); ++i) {
      absl::StrAppend(&out, i > 0 ? ",\n " : "", m.steps_json(i));
    }
    return out + "]\n";
  }
  std::string out = absl::StrFormat("%6s %8s %6s %7s %8s %9s %8s %6s %7s %4s\n", "step", "reward",
                                    "acc", "len", "tok/s", "kl", "entropy", "stale", "step_s", "v");
  for (const std::string& line : m.steps_json()) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) continue;
    absl::StrAppend(
        &out, absl::StrFormat("%6d %8.3f %6.3f %7.1f %8.0f %9.5f %8.3f %6d %7.2f %4d\n",
                              j.value("step", int64_t{0}), j.value("reward_mean", 0.0),
                              j.value("accuracy", 0.0), j.value("response_len_mean", 0.0),
                              j.value("tokens_per_sec", 0.0), j.value("approx_kl", 0.0),
                              j.value("entropy", 0.0), j.value("staleness_max", int64_t{0}),
                              j.value("step_seconds", 0.0), j.value("weight_version", int64_t{0})));
  }
  if (m.steps_json_size() == 0) out += "(no RL step finished yet)\n";
  return out;
}

std::string FormatRunStatus(const v1::RunStatus& s) {
  std::string out;
  const v1::RunState state = s.state();
  absl::StrAppend(&out, "run        ", s.run_name().empty() ? "(none)" : s.run_name(), "\n");
  absl::StrAppend(&out, "state      ", RunStateName(state), "\n");
  if (state != v1::RUN_STATE_IDLE) {
    absl::StrAppend(&out, "step       ", s.step(), "/", s.total_steps(), "\n");
    absl::StrAppend(&out, "version    ", s.weight_version(), "\n");
    if (s.step() > 0) {
      absl::StrAppend(&out, absl::StrFormat("reward     %.3f\n", s.reward_mean()));
      absl::StrAppend(&out, absl::StrFormat("accuracy   %.3f\n", s.accuracy()));
    }
    if (EvaluatedBefore(state)) {
      absl::StrAppend(&out, "held-out   before RL ", Percent(s.heldout_accuracy_before()));
      if (state == v1::RUN_STATE_FINISHED) {
        absl::StrAppend(&out, "  after RL ", Percent(s.heldout_accuracy_after()));
      }
      absl::StrAppend(&out, "\n");
    }
  }
  if (!s.message().empty()) absl::StrAppend(&out, "message    ", s.message(), "\n");
  if (s.workers_size() > 0) {
    absl::StrAppend(&out, "workers    ", s.workers_size(), "\n", FormatWorkers(s));
  }
  return out;
}

std::string FormatWorkers(const v1::RunStatus& s) {
  std::string out;
  for (const v1::WorkerStatus& w : s.workers()) {
    absl::StrAppend(&out, absl::StrFormat("  %-9s %-22s v%-6d %s\n", w.role(), w.address(),
                                          w.weight_version(),
                                          w.healthy() ? "healthy" : "unhealthy"));
  }
  return out;
}

int RunRlctl(const std::vector<std::string>& args, const std::string& env_addr,
             std::ostream& out, std::ostream& err) {
  // `verify` talks to a verifier, `generate` to a rollout worker and
  // `health` to any server, not (only) the controller; each has its own flags.
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "health") {
      std::vector<std::string> rest(args.begin(), args.begin() + i);
      rest.insert(rest.end(), args.begin() + i + 1, args.end());
      return RunHealthCommand(rest, env_addr, out, err);
    }
    if (args[i] == "verify" || args[i] == "generate") {
      std::vector<std::string> rest(args.begin(), args.begin() + i);
      rest.insert(rest.end(), args.begin() + i + 1, args.end());
      return args[i] == "verify" ? RunVerifyCommand(rest, out, err)
                                 : RunGenerateCommand(rest, out, err);
    }
  }
  std::string addr = env_addr;
  std::string timeout_text = "10";
  std::string last_text;
  TlsFiles tls;
  std::string submit_config, submit_rollouts, submit_verifier, submit_learner;
  std::string output = "table";
  std::string token_file;
  std::vector<std::string> commands;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h" || arg == "help") {
      out << RlctlUsage();
      return kRlctlOk;
    }
    if (arg == "-o" || arg == "--output" || absl::StartsWith(arg, "--output=")) {
      if (absl::StartsWith(arg, "--output=")) {
        output = arg.substr(9);
      } else if (i + 1 < args.size()) {
        output = args[++i];
      } else {
        err << "rlctl: flag '" << arg << "' needs a value (table or json)\n";
        return kRlctlUsage;
      }
      if (output != "table" && output != "json") {
        err << "rlctl: -o must be table or json, got '" << output << "'\n";
        return kRlctlUsage;
      }
      continue;
    }
    std::string name, value;
    bool has_value = false;
    if (absl::StartsWith(arg, "--")) {
      name = arg.substr(2);
      size_t eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
      if (name != "addr" && name != "timeout" && name != "token-file" && name != "last" &&
          name != "tls-ca" && name != "tls-cert" && name != "tls-key" && name != "config" &&
          name != "rollout" && name != "verifier" && name != "learner") {
        err << "rlctl: unknown flag '--" << name << "'\n" << RlctlUsage();
        return kRlctlUsage;
      }
      if (!has_value) {
        if (i + 1 >= args.size()) {
          err << "rlctl: flag '--" << name << "' needs a value\n";
          return kRlctlUsage;
        }
        value = args[++i];
      }
      (name == "addr"       ? addr
       : name == "timeout"  ? timeout_text
       : name == "last"     ? last_text
       : name == "tls-ca"   ? tls.ca
       : name == "tls-cert" ? tls.cert
       : name == "tls-key"  ? tls.key
       : name == "config"   ? submit_config
       : name == "rollout"  ? submit_rollouts
       : name == "verifier" ? submit_verifier
       : name == "learner"  ? submit_learner
                            : token_file) = value;
      continue;
    }
    commands.push_back(arg);
  }
  // `rlctl run submit --config FILE [key=value ...]`: the rest are overrides.
  std::vector<std::string> submit_overrides;
  const bool submit = commands.size() >= 2 && commands[0] == "run" && commands[1] == "submit";
  if (submit) {
    submit_overrides.assign(commands.begin() + 2, commands.end());
    commands = {"submit"};
    if (submit_config.empty()) {
      err << "rlctl: run submit needs --config FILE (a run config YAML)\n";
      return kRlctlUsage;
    }
  } else if (!submit_config.empty() || !submit_rollouts.empty() || !submit_verifier.empty() ||
             !submit_learner.empty()) {
    err << "rlctl: --config, --rollout, --verifier and --learner belong to `rlctl run submit`\n";
    return kRlctlUsage;
  }
  // `rlctl run status|pause|resume|stop|checkpoint` = the same commands
  // without `run`.
  if (commands.size() == 2 && commands[0] == "run" &&
      (commands[1] == "status" || commands[1] == "pause" || commands[1] == "resume" ||
       commands[1] == "stop" || commands[1] == "checkpoint")) {
    commands.erase(commands.begin());
  }
  const bool config_show = commands.size() == 2 && commands[0] == "config" && commands[1] == "show";
  const bool workers_list = commands.size() == 2 && commands[0] == "workers" && commands[1] == "list";
  const bool workers_drain =
      commands.size() == 3 && commands[0] == "workers" && commands[1] == "drain";
  if (!last_text.empty() && (commands.size() != 1 || commands[0] != "metrics")) {
    err << "rlctl: --last belongs to `rlctl metrics`\n";
    return kRlctlUsage;
  }
  int last = 20;
  if (!last_text.empty() && (!absl::SimpleAtoi(last_text, &last) || last < 0)) {
    err << "rlctl: --last must be a number of steps (0 = all), got '" << last_text << "'\n";
    return kRlctlUsage;
  }
  if (!config_show && !workers_list && !workers_drain &&
      (commands.size() != 1 || commands[0] == "config" || commands[0] == "workers")) {
    err << "rlctl: expected one command (status, pause, resume, stop, checkpoint, metrics, "
           "config show, workers list or workers drain ADDR)\n"
        << RlctlUsage();
    return kRlctlUsage;
  }
  const std::string command = config_show    ? "config"
                              : workers_list  ? "workers-list"
                              : workers_drain ? "workers-drain"
                                              : commands[0];
  if (command != "status" && command != "pause" && command != "resume" && command != "stop" &&
      command != "checkpoint" && command != "config" && command != "workers-list" &&
      command != "workers-drain" && command != "metrics" && command != "submit") {
    err << "rlctl: unknown command '" << command << "'\n" << RlctlUsage();
    return kRlctlUsage;
  }
  if (addr.empty()) {
    err << "rlctl: no controller address: pass --addr HOST:PORT or set RLCTL_ADDR\n";
    return kRlctlUsage;
  }
  double timeout_s = 0;
  if (!absl::SimpleAtod(timeout_text, &timeout_s) || !(timeout_s > 0)) {
    err << "rlctl: --timeout must be a positive number of seconds, got '" << timeout_text << "'\n";
    return kRlctlUsage;
  }

  if (absl::Status t = SetProcessTls(tls); !t.ok()) {
    err << "rlctl: " << t.message() << "\n";
    return kRlctlUsage;
  }
  std::string token;
  if (!token_file.empty()) {
    absl::StatusOr<std::string> t = ReadTokenFile(token_file);
    if (!t.ok()) {
      err << "rlctl: " << t.status().message() << "\n";
      return kRlctlUsage;
    }
    token = *t;
  }
  std::unique_ptr<v1::ControlService::Stub> stub = v1::ControlService::NewStub(MakeChannel(addr));
  grpc::ClientContext context;
  AttachBearerToken(&context, token);
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  v1::RunStatus status;
  v1::RunConfigText config;
  v1::StepMetricsList metrics;
  grpc::Status rpc;
  if (command == "submit") {
    std::ifstream in(submit_config);
    if (!in) {
      err << "rlctl: cannot read --config '" << submit_config << "'\n";
      return kRlctlUsage;
    }
    std::stringstream yaml;
    yaml << in.rdbuf();
    v1::SubmitRunRequest request;
    request.set_config_yaml(yaml.str());
    for (const std::string& o : submit_overrides) request.add_overrides(o);
    for (absl::string_view r : absl::StrSplit(submit_rollouts, ',', absl::SkipEmpty())) {
      request.add_rollouts(std::string(r));
    }
    request.set_verifier(submit_verifier);
    request.set_learner(submit_learner);
    rpc = stub->SubmitRun(&context, request, &status);
  } else if (command == "metrics") {
    v1::GetMetricsRequest request;
    request.set_last(last);
    rpc = stub->GetMetrics(&context, request, &metrics);
  } else if (command == "config") {
    rpc = stub->GetConfig(&context, v1::GetConfigRequest(), &config);
  } else if (command == "checkpoint") {
    rpc = stub->Checkpoint(&context, v1::CheckpointRequest(), &status);
  } else if (command == "workers-list") {
    rpc = stub->GetStatus(&context, v1::GetStatusRequest(), &status);
  } else if (command == "workers-drain") {
    v1::DrainWorkerRequest request;
    request.set_address(commands[2]);
    rpc = stub->DrainWorker(&context, request, &status);
  } else if (command == "status") {
    rpc = stub->GetStatus(&context, v1::GetStatusRequest(), &status);
  } else if (command == "pause") {
    rpc = stub->Pause(&context, v1::PauseRequest(), &status);
  } else if (command == "resume") {
    rpc = stub->Resume(&context, v1::ResumeRequest(), &status);
  } else {
    rpc = stub->Stop(&context, v1::StopRequest(), &status);
  }
  if (rpc.error_code() == grpc::StatusCode::UNAVAILABLE ||
      rpc.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    err << "rlctl: controller at " << addr << " unreachable: " << rpc.error_message() << "\n";
    return kRlctlUnreachable;
  }
  if (!rpc.ok()) {
    err << "rlctl: " << command << " failed: " << rpc.error_message() << "\n";
    return kRlctlRpcError;
  }
  if (command == "config") {
    out << config.yaml();
  } else if (command == "metrics") {
    out << FormatMetrics(metrics, output == "json");
  } else if (output == "json") {
    std::string json;
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(status, &json, options);
    out << json;
    if (json.empty() || json.back() != '\n') out << "\n";
  } else if (command == "status") {
    out << FormatRunStatus(status);
  } else if (command == "workers-list") {
    out << FormatWorkers(status);
  } else if (command == "submit") {
    out << "submitted run '" << status.run_name() << "'; follow it with: rlctl --addr " << addr
        << " status\n";
  } else if (command == "workers-drain") {
    out << "drain: " << commands[2] << " leaves before the next step of run '"
        << status.run_name() << "'\n";
  } else {
    out << absl::StrFormat("%s: run '%s' is %s at step %d/%d (%s)\n", command, status.run_name(),
                           RunStateName(status.state()), status.step(), status.total_steps(),
                           status.message());
  }
  return kRlctlOk;
}

}  // namespace rlpost
