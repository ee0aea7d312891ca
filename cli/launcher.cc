#include "cli/launcher.h"

#include <algorithm>

#include <signal.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/config.h"
#include "common/grpc_util.h"

namespace rlpost {
namespace {

namespace fs = std::filesystem;

constexpr std::chrono::milliseconds kPortWait{60000};
constexpr std::chrono::milliseconds kStopGrace{5000};
constexpr int kTailLines = 20;

std::string FileName(const std::string& name) {
  // "learner[0]" -> "learner-0"
  std::string out;
  for (char c : name) {
    if (c == '[') {
      out += '-';
    } else if (c != ']') {
      out += c;
    }
  }
  return out;
}

}  // namespace

Launcher::Launcher(std::string bin_dir, std::ostream* out, std::ostream* err)
    : bin_dir_(std::move(bin_dir)), out_(out), err_(err) {}

Launcher::~Launcher() { StopAll(); }

std::string Launcher::Tail(const std::string& path, int lines) const {
  std::ifstream in(path);
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    last.push_back(line);
    if (static_cast<int>(last.size()) > lines) last.pop_front();
  }
  std::string out;
  for (const std::string& l : last) absl::StrAppend(&out, "  | ", l, "\n");
  return out;
}

absl::Status Launcher::StartChild(const std::string& name, const std::string& binary,
                                  std::vector<std::string> args, bool serves, bool log_stdout,
                                  std::vector<int> cpus) {
  Child child;
  child.name = name;
  child.log_path = (fs::path(logs_dir_) / (FileName(name) + ".log")).string();
  std::vector<std::string> argv = {(fs::path(bin_dir_) / binary).string()};
  if (serves) {
    child.port_file = (fs::path(ports_dir_) / (FileName(name) + ".port")).string();
    argv.insert(argv.end(), {"--listen", "127.0.0.1:0", "--port-file", child.port_file});
  }
  // Every process serves Prometheus /metrics on a port of its choosing.
  child.metrics_port_file = (fs::path(ports_dir_) / (FileName(name) + ".metrics.port")).string();
  argv.insert(argv.end(), {"--metrics-listen", "127.0.0.1:0", "--metrics-port-file",
                           child.metrics_port_file});
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), child_args_.begin(), child_args_.end());
  child.process = std::make_unique<Subprocess>();
  child.process->set_cpus(cpus);
  absl::Status s = log_stdout ? child.process->Start(argv, child.log_path)
                              : child.process->StartWithOutput(argv, "", child.log_path);
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat("cannot start ", name, ": ", s.message()));
  child.argv = std::move(argv);
  child.log_stdout = log_stdout;
  child.cpus = std::move(cpus);
  children_.push_back(std::move(child));
  return absl::OkStatus();
}

absl::Status Launcher::RestartChild(Child* child, const std::vector<std::string>& flags,
                                    const std::vector<std::string>& overrides,
                                    const std::vector<std::pair<std::string, std::string>>& replace) {
  std::vector<std::string> argv = child->argv;
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    // The same gRPC port, so the others keep reaching it.
    if (argv[i] == "--listen" && child->port > 0) argv[i + 1] = absl::StrCat("127.0.0.1:", child->port);
    for (const auto& [flag, value] : replace) {
      if (argv[i] == flag) argv[i + 1] = value;
    }
  }
  argv.insert(argv.begin() + 1, flags.begin(), flags.end());
  argv.insert(argv.end(), overrides.begin(), overrides.end());
  ++child->restarts;
  child->process = std::make_unique<Subprocess>();
  child->process->set_cpus(child->cpus);
  absl::Status s = child->log_stdout ? child->process->Start(argv, child->log_path)
                                     : child->process->StartWithOutput(argv, "", child->log_path);
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("cannot restart ", child->name, ": ", s.message()));
  }
  return absl::OkStatus();
}

void Launcher::RestartLostServices(const RunConfig& config, int controller_port) {
  for (Child& c : children_) {
    const bool rollout = c.name.rfind("rollout[", 0) == 0;
    if ((c.name != "verifier" && !rollout) || c.process->running()) continue;
    if (c.restarts >= config.run_restart_limit) continue;  // reported once, below
    const int code = c.process->exit_code();
    std::vector<std::string> flags;
    if (rollout) {
      // It comes back empty: it registers, gets the current weights, then serves.
      flags = {"--controller", absl::StrCat("127.0.0.1:", controller_port), "--advertise",
               absl::StrCat("127.0.0.1:", c.port)};
    }
    *out_ << "rlpost: " << c.name << " exited with status " << code << "; starting it again on 127.0.0.1:"
          << c.port << " (restart " << c.restarts + 1 << " of " << config.run_restart_limit
          << ")\n"
          << std::flush;
    absl::Status s = RestartChild(&c, flags, {});
    if (!s.ok()) *err_ << "rlpost: " << s.message() << "\n";
    if (c.restarts >= config.run_restart_limit) {
      *out_ << "rlpost: " << c.name << " reached run.restart_limit (" << config.run_restart_limit
            << "); it will not be started again\n"
            << std::flush;
    }
  }
}

bool Launcher::LearnerRankDied() {
  for (Child& c : children_) {
    if (c.name.rfind("learner[", 0) == 0 && !c.process->running()) return true;
  }
  return false;
}

bool Launcher::RestartRun(const RunConfig& config, int code) {
  Child* controller = nullptr;
  std::vector<Child*> learners;
  bool learner_died = false;
  for (Child& c : children_) {
    if (c.name == "controller") controller = &c;
    if (c.name.rfind("learner[", 0) == 0) {
      learners.push_back(&c);
      learner_died = learner_died || !c.process->running();
    }
  }
  const bool killed = code > 128 && code != 128 + SIGTERM;
  if (controller == nullptr || ShutdownRequested() || (!killed && !learner_died) ||
      config.run_checkpoint_every <= 0 || controller->restarts >= config.run_restart_limit) {
    return false;
  }
  if (learner_died) {
    // A learner group cannot take a rank back: every rank starts again, on a
    // fresh rendezvous port, and the controller restores the checkpoint.
    for (Child* l : learners) l->process->Stop(kStopGrace);
    absl::StatusOr<int> master_port = PickFreePort();
    if (!master_port.ok()) return false;
    *out_ << "rlpost: a learner rank died; starting every rank again\n" << std::flush;
    for (Child* l : learners) {
      absl::Status s =
          RestartChild(l, {}, {}, {{"--master-port", absl::StrCat(*master_port)}});
      if (!s.ok()) {
        *err_ << "rlpost: " << s.message() << "\n";
        return false;
      }
    }
  }
  *out_ << "rlpost: the controller exited with status " << code
        << "; starting it again with run.resume=true (restart " << controller->restarts + 1
        << " of " << config.run_restart_limit << ")\n"
        << std::flush;
  absl::Status s = RestartChild(controller, {}, {"run.resume=true"});
  if (!s.ok()) {
    *err_ << "rlpost: " << s.message() << "\n";
    return false;
  }
  return true;
}

int Launcher::MetricsPort(const Child& child) const {
  std::ifstream in(child.metrics_port_file);
  int port = 0;
  return (in >> port) ? port : 0;
}

absl::Status Launcher::WaitForPorts(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    bool all = true;
    for (Child& c : children_) {
      if (c.port_file.empty() || c.port > 0) continue;
      absl::StatusOr<int> port =
          WaitForPortFile(c.port_file, c.process.get(), c.name, std::chrono::milliseconds(0));
      if (port.ok()) {
        c.port = *port;
      } else {
        all = false;
      }
    }
    // Any child that exits while the others start up fails the launch.
    for (Child& c : children_) {
      if (!c.process->running()) {
        return absl::UnavailableError(absl::StrCat(
            c.name, " exited with status ", c.process->exit_code(),
            " while starting; see ", c.log_path, "\n", Tail(c.log_path, kTailLines)));
      }
    }
    if (all) return absl::OkStatus();
    if (ShutdownRequested()) return absl::CancelledError("interrupted");
    if (std::chrono::steady_clock::now() >= deadline) {
      std::string missing;
      for (const Child& c : children_) {
        if (!c.port_file.empty() && c.port == 0) {
          absl::StrAppend(&missing, " ", c.name, " (log ", c.log_path, ")");
        }
      }
      return absl::DeadlineExceededError(absl::StrCat("no port reported within ",
                                                      timeout.count() / 1000, " s by:", missing));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void Launcher::StopAll() {
  for (Child& c : children_) c.process->Signal(SIGTERM);
  for (Child& c : children_) c.process->Stop(kStopGrace);
  children_.clear();
}

int Launcher::Train(const std::string& config_path, const std::vector<std::string>& overrides) {
  // 1. The config, checked before anything starts.
  absl::StatusOr<Config> raw = Config::Load(RunConfigSchema(), config_path, overrides);
  absl::StatusOr<RunConfig> config =
      raw.ok() ? ParseRunConfig(*raw) : absl::StatusOr<RunConfig>(raw.status());
  if (!config.ok()) {
    *err_ << "rlpost: " << config.status().message() << "\n";
    return kLaunchUsage;
  }
  // Pinning (rollout.cpus, learner.cpus) may name only CPUs this process
  // may use.
  const std::vector<int> allowed = AllowedCpus();
  for (const auto& [key, cpus] : {std::pair<const char*, const std::vector<int>*>{
                                      "rollout.cpus", &config->rollout_cpus},
                                  {"learner.cpus", &config->learner_cpus},
                                  {"verifier.cpus", &config->verifier_cpus},
                                  {"run.controller_cpus", &config->controller_cpus}}) {
    for (int cpu : *cpus) {
      if (std::find(allowed.begin(), allowed.end(), cpu) == allowed.end()) {
        *err_ << "rlpost: config key '" << key << "' names CPU " << cpu
              << ", but this machine lets rlpost use CPUs " << absl::StrJoin(allowed, ",") << "\n";
        return kLaunchUsage;
      }
    }
  }
  // Every rank runs on this host: rank r takes GPU r (--local-rank), so one
  // fixed GPU for all of them would put two NCCL ranks on one device.
  if (config->learner_world_size > 1 && absl::StartsWith(config->learner_device, "cuda:")) {
    *err_ << "rlpost: config key 'learner.device' is " << config->learner_device << " but the "
          << config->learner_world_size << " learner ranks of `rlpost train` share this host: "
          << "set learner.device=cuda (rank r uses CUDA device r)\n";
    return kLaunchUsage;
  }
  for (const char* binary : {"rlpost-verifier", "rlpost-learner", "rlpost-rollout",
                             "rlpost-controller"}) {
    const fs::path path = fs::path(bin_dir_) / binary;
    if (access(path.c_str(), X_OK) != 0) {
      *err_ << "rlpost: " << path.string() << " not found or not executable (build every "
            << "target first: make build)\n";
      return kLaunchFailed;
    }
  }

  // 2. The run folder.
  const fs::path run_dir = fs::path(config->output_dir) / config->name;
  logs_dir_ = (run_dir / "logs").string();
  ports_dir_ = (run_dir / "ports").string();
  std::error_code ec;
  fs::create_directories(logs_dir_, ec);
  if (!ec) fs::create_directories(ports_dir_, ec);
  if (ec) {
    *err_ << "rlpost: cannot create " << run_dir.string() << ": " << ec.message() << "\n";
    return kLaunchFailed;
  }
  // Old ports always go. Old logs go too, except when resuming: then the
  // interrupted attempt's logs are kept as <role>.log.previous (the ones
  // before that are replaced).
  for (const fs::directory_entry& e : fs::directory_iterator(ports_dir_, ec)) fs::remove(e.path(), ec);
  for (const fs::directory_entry& e : fs::directory_iterator(logs_dir_, ec)) {
    const fs::path p = e.path();
    if (config->run_resume && p.extension() == ".log") {
      fs::rename(p, p.string() + ".previous", ec);
    } else if (!config->run_resume || p.extension() != ".previous") {
      fs::remove(p, ec);
    }
  }
  std::ofstream(run_dir / "config.yaml", std::ios::trunc) << raw->ToYaml();
  child_args_.clear();
  if (!config_path.empty()) child_args_ = {"--config", config_path};
  child_args_.insert(child_args_.end(), overrides.begin(), overrides.end());

  *out_ << "rlpost: run '" << config->name << "': outputs in " << run_dir.string()
        << ", logs in " << logs_dir_ << "\n"
        << std::flush;

  // 3. Workers, each on a free port of its choosing.
  auto fail = [&](const absl::Status& s) {
    if (absl::IsCancelled(s) || ShutdownRequested()) {
      *err_ << "rlpost: interrupted; stopping every process\n";
      StopAll();
      return kLaunchInterrupted;
    }
    *err_ << "rlpost: " << s.message() << "\n";
    StopAll();
    return kLaunchFailed;
  };
  absl::StatusOr<int> master_port = PickFreePort();
  if (!master_port.ok()) return fail(master_port.status());
  absl::Status s = StartChild("verifier", "rlpost-verifier", {}, /*serves=*/true, true,
                              config->verifier_cpus);
  for (int64_t rank = 0; s.ok() && rank < config->learner_world_size; ++rank) {
    s = StartChild(absl::StrCat("learner[", rank, "]"), "rlpost-learner",
                   {"--rank", absl::StrCat(rank), "--world-size",
                    absl::StrCat(config->learner_world_size), "--master-addr", "127.0.0.1",
                    "--master-port", absl::StrCat(*master_port),
                    // All ranks share this host: learner.device=cuda puts rank r on GPU r.
                    "--local-rank", absl::StrCat(rank)},
                   /*serves=*/rank == 0, true, config->learner_cpus);
  }
  for (int64_t i = 0; s.ok() && i < config->rollout_workers; ++i) {
    s = StartChild(absl::StrCat("rollout[", i, "]"), "rlpost-rollout", {}, /*serves=*/true, true,
                   config->rollout_cpus);
  }
  if (s.ok()) s = WaitForPorts(kPortWait);
  if (!s.ok()) return fail(s);

  std::vector<std::string> rollouts;
  std::string verifier, learner;
  for (const Child& c : children_) {
    const std::string address = absl::StrCat("127.0.0.1:", c.port);
    if (c.name == "verifier") verifier = address;
    if (c.name == "learner[0]") learner = address;
    if (c.name.rfind("rollout[", 0) == 0) rollouts.push_back(address);
    const int metrics_port = MetricsPort(c);
    *out_ << absl::StrFormat("rlpost:   %-12s %-18s pid %-7d metrics %-6s log %s\n", c.name,
                             c.port > 0 ? address
                                        : absl::StrCat("(rendezvous :", *master_port, ")"),
                             c.process->pid(),
                             metrics_port > 0 ? absl::StrCat(":", metrics_port) : "-",
                             c.log_path);
  }
  *out_ << std::flush;

  // 4. The controller runs the job; its stdout is the user's.
  s = StartChild("controller", "rlpost-controller",
                 {"--rollout", absl::StrJoin(rollouts, ","), "--verifier", verifier, "--learner",
                  learner},
                 /*serves=*/true, /*log_stdout=*/false, config->controller_cpus);
  if (!s.ok()) return fail(s);
  Child* controller = &children_.back();
  s = WaitForPorts(kPortWait);
  // A controller that already exited is reported below, with its log.
  if (!s.ok() && controller->process->running()) return fail(s);
  if (s.ok()) {
    const int metrics_port = MetricsPort(*controller);
    *out_ << "rlpost:   controller   127.0.0.1:" << controller->port << "  pid "
          << controller->process->pid() << "  (rlctl --addr 127.0.0.1:"
          << controller->port << " status)"
          << (metrics_port > 0 ? absl::StrCat("  metrics http://127.0.0.1:", metrics_port,
                                              "/metrics")
                               : "")
          << "\n"
          << std::flush;
  }
  const int controller_port = controller->port;
  int code = 0;
  while (true) {
    while (controller->process->running()) {
      if (ShutdownRequested()) {
        *err_ << "rlpost: interrupted; stopping every process\n";
        StopAll();
        return kLaunchInterrupted;
      }
      RestartLostServices(*config, controller_port);
      if (LearnerRankDied() && config->run_checkpoint_every > 0 &&
          controller->restarts < config->run_restart_limit) {
        // The controller would wait on a training group that cannot answer:
        // end it now; RestartRun starts every rank and the controller again.
        controller->process->Stop(kStopGrace);
        break;
      }
      controller->process->Wait(std::chrono::milliseconds(100));
    }
    code = controller->process->exit_code();
    if (code == 0 || !RestartRun(*config, code)) break;
  }
  const std::string controller_log = controller->log_path;
  StopAll();
  if (code != 0) {
    *err_ << "rlpost: the controller exited with status " << code << "; last lines of "
          << controller_log << ":\n"
          << Tail(controller_log, kTailLines) << "rlpost: every log is in " << logs_dir_ << "\n";
  }
  return code;
}

}  // namespace rlpost
