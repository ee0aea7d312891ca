// rlpost-rollout: a rollout worker serving RolloutService.
#include <ATen/Parallel.h>

#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/retry.h"
#include "common/bearer_token.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "common/run_config.h"
#include "model/char_tokenizer.h"
#include "rollout/engine.h"
#include "rollout/rollout_service.h"
#include "rlpost/v1/control.grpc.pb.h"

int main(int argc, char** argv) {
  using namespace rlpost;
  InstallShutdownSignals();
  SetLogRole("rollout");
  std::string listen, port_file, config_path, controller, advertise, token_file, help;
  std::vector<FlagSpec> flags = {
      {"listen", &listen, "HOST:PORT to serve on (port 0 picks a free port)"},
      {"port-file", &port_file, "write the bound port to this file"},
      {"controller", &controller,
       "HOST:PORT of a running controller to join: it sends the current weights, then "
       "requests (needs --advertise)"},
      {"advertise", &advertise, "HOST:PORT the controller reaches this worker at"},
      {"token-file", &token_file, "the controller's bearer token, when it has one"},
      {"config", &config_path, "run config YAML (model shape, threads); key=value overrides follow"},
      {"help", &help, "show this help"},
  };
  std::vector<std::string> overrides;
  absl::Status s = ParseFlags(argc, argv, flags, &overrides);
  if (s.ok() && !controller.empty() && advertise.empty()) {
    s = absl::InvalidArgumentError("--controller needs --advertise HOST:PORT (this worker's "
                                   "address as the controller reaches it)");
  }
  if (!s.ok() || listen.empty()) {
    std::cerr << "rlpost-rollout: " << (s.ok() ? "--listen is required" : s.message()) << "\n"
              << FlagUsage("rlpost-rollout", flags);
    return 2;
  }
  absl::StatusOr<RunConfig> config = LoadRunConfig(config_path, overrides);
  if (!config.ok()) {
    std::cerr << "rlpost-rollout: " << config.status().message() << "\n";
    return 2;
  }
  at::set_num_threads(static_cast<int>(config->rollout_threads));
  CharTokenizer tokenizer;
  EngineOptions options;
  options.max_batch = config->rollout_max_batch;
  options.kv_block_size = config->rollout_kv_block_size;
  options.kv_blocks = config->rollout_kv_blocks;
  options.speculation.drafter = *ParseDrafterKind(config->rollout_drafter);
  options.speculation.max_draft_tokens = static_cast<int>(config->rollout_max_draft_tokens);
  options.speculation.adaptive = config->rollout_adaptive;
  absl::StatusOr<std::unique_ptr<RolloutEngine>> engine = RolloutEngine::Create(
      ModelConfig::FromShape(config->model, tokenizer.vocab_size()), options);
  if (!engine.ok()) {
    std::cerr << "rlpost-rollout: " << engine.status().message() << "\n";
    return 1;
  }
  RolloutServiceImpl service(engine->get());
  auto host = ServerHost::Start(listen, {&service}, port_file, "rlpost-rollout");
  if (!host.ok()) {
    std::cerr << "rlpost-rollout: " << host.status().message() << "\n";
    return 1;
  }
  RLPOST_LOG(INFO) << "serving " << (*engine)->Describe() << " at weight version "
                   << (*engine)->weight_version() << ", drafter " << config->rollout_drafter;
  std::string token;
  if (!token_file.empty()) {
    absl::StatusOr<std::string> t = ReadTokenFile(token_file);
    if (!t.ok()) {
      std::cerr << "rlpost-rollout: " << t.status().message() << "\n";
      (*host)->Shutdown();
      return 2;
    }
    token = *t;
  }
  if (!controller.empty()) {
    // Join a running job: the controller pushes the current weights before
    // its next step, then sends requests.
    RetryPolicy policy;
    policy.max_attempts = static_cast<int>(config->connect_retries);
    policy.initial_backoff = std::chrono::milliseconds(config->connect_backoff_ms);
    auto stub = v1::ControlService::NewStub(MakeChannel(controller));
    absl::Status joined = RetryWithBackoff(
        [&]() -> absl::Status {
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
          AttachBearerToken(&ctx, token);
          v1::RegisterWorkerRequest request;
          request.set_address(advertise);
          request.set_role("rollout");
          v1::RunStatus status;
          return FromGrpcStatus(stub->RegisterWorker(&ctx, request, &status),
                                absl::StrCat("controller ", controller, " RegisterWorker"));
        },
        policy, absl::StrCat("controller ", controller));
    if (!joined.ok()) {
      std::cerr << "rlpost-rollout: cannot join: " << joined.message() << "\n";
      (*host)->Shutdown();
      return 1;
    }
    RLPOST_LOG(INFO) << "registered with controller " << controller << " as " << advertise;
  }
  WaitForShutdown();
  (*host)->Shutdown();
  return 0;
}
