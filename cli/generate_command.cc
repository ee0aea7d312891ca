#include "cli/generate_command.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/rlctl.h"
#include "common/grpc_util.h"
#include "rlpost/v1/rollout.grpc.pb.h"

namespace rlpost {
namespace {

using nlohmann::json;

absl::Status FlagError(const std::string& flag, const std::string& what,
                       const std::string& value) {
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, " must be ", what, ", got '", value, "'"));
}

// Adds the comma-separated, C-escaped stop strings of one --stop value.
absl::Status AddStopStrings(const std::string& value, v1::SamplingParams* params) {
  for (absl::string_view piece : absl::StrSplit(value, ',')) {
    std::string text, error;
    if (!absl::CUnescape(piece, &text, &error)) {
      return FlagError("stop", absl::StrCat("comma-separated strings with C escapes (", error, ")"),
                       value);
    }
    if (text.empty()) return FlagError("stop", "non-empty strings", value);
    params->add_stop_strings(text);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<GenerateFlags> ParseGenerateFlags(const std::vector<std::string>& args,
                                                 uint64_t random_seed) {
  GenerateFlags flags;
  v1::GenerateRequest& request = flags.request;
  v1::SamplingParams* params = request.mutable_params();
  request.set_prompt_id("rlctl");
  request.set_n(4);
  params->set_temperature(0.7f);
  params->set_max_new_tokens(256);
  params->set_seed(random_seed);
  bool has_prompt = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      flags.help = true;
      return flags;
    }
    if (arg.rfind("--", 0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
    }
    std::string name = arg.substr(2), value;
    const size_t eq = name.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    if (name == "json") {
      if (inline_value) return FlagError("json", "given without a value", value);
      flags.json = true;
      continue;
    }
    static const char* const kValueFlags[] = {"addr",  "prompt", "n",    "temperature",
                                              "top-p", "top-k",  "seed", "max-tokens",
                                              "stop",  "token-budget",   "timeout",
                                              "tls-ca", "tls-cert",      "tls-key"};
    if (std::find(std::begin(kValueFlags), std::end(kValueFlags), name) == std::end(kValueFlags)) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag '--", name, "'"));
    }
    if (!inline_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("flag '--", name, "' needs a value"));
      }
      value = args[++i];
    }
    if (name == "addr") {
      flags.addr = value;
    } else if (name == "tls-ca") {
      flags.tls.ca = value;
    } else if (name == "tls-cert") {
      flags.tls.cert = value;
    } else if (name == "tls-key") {
      flags.tls.key = value;
    } else if (name == "prompt") {
      request.set_prompt(value);
      has_prompt = true;
    } else if (name == "n") {
      int n = 0;
      if (!absl::SimpleAtoi(value, &n) || n < 1) return FlagError(name, "an integer >= 1", value);
      request.set_n(n);
    } else if (name == "temperature") {
      double t = 0;
      if (!absl::SimpleAtod(value, &t) || !std::isfinite(t) || t < 0 || t > 1000) {
        return FlagError(name, "a number in [0, 1000] (0 = greedy)", value);
      }
      params->set_temperature(static_cast<float>(t));
    } else if (name == "top-p") {
      double p = 0;
      if (!absl::SimpleAtod(value, &p) || !std::isfinite(p) || p < 0 || p > 1) {
        return FlagError(name, "a number in [0, 1] (0 or 1 = off)", value);
      }
      params->set_top_p(static_cast<float>(p));
    } else if (name == "top-k") {
      int k = 0;
      if (!absl::SimpleAtoi(value, &k) || k < 0) {
        return FlagError(name, "an integer >= 0 (0 = off)", value);
      }
      params->set_top_k(k);
    } else if (name == "seed") {
      uint64_t seed = 0;
      if (!absl::SimpleAtoi(value, &seed)) return FlagError(name, "an unsigned integer", value);
      params->set_seed(seed);
    } else if (name == "max-tokens") {
      int m = 0;
      if (!absl::SimpleAtoi(value, &m) || m < 0) {
        return FlagError(name, "an integer >= 0 (0 = up to the context length)", value);
      }
      params->set_max_new_tokens(m);
    } else if (name == "stop") {
      if (absl::Status s = AddStopStrings(value, params); !s.ok()) return s;
    } else if (name == "token-budget") {
      int64_t b = 0;
      if (!absl::SimpleAtoi(value, &b) || b < 0) {
        return FlagError(name, "an integer >= 0 (0 = no limit)", value);
      }
      request.set_token_budget(b);
    } else if (name == "timeout") {
      if (!absl::SimpleAtod(value, &flags.timeout_s) || !std::isfinite(flags.timeout_s) ||
          !(flags.timeout_s > 0)) {
        return FlagError(name, "a positive number of seconds", value);
      }
    }
  }
  if (flags.addr.empty()) {
    return absl::InvalidArgumentError("--addr HOST:PORT (the rollout worker) is required");
  }
  if (!has_prompt) return absl::InvalidArgumentError("--prompt TEXT is required");
  return flags;
}

std::string FinishReasonWord(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_STOP: return "stop";
    case v1::FINISH_REASON_LENGTH: return "length";
    case v1::FINISH_REASON_ABORT: return "abort";
    case v1::FINISH_REASON_PARTIAL: return "partial";
    default: return "unspecified";
  }
}

std::string FormatCompletionJson(const v1::Completion& c) {
  json line;
  line["sample_index"] = c.sample_index();
  line["text"] = c.text();
  line["token_ids"] = std::vector<int32_t>(c.token_ids().begin(), c.token_ids().end());
  line["finish_reason"] = FinishReasonWord(c.finish_reason());
  line["logprobs"] = std::vector<float>(c.logprobs().begin(), c.logprobs().end());
  line["weight_versions"] =
      std::vector<int64_t>(c.weight_versions().begin(), c.weight_versions().end());
  line["drafted_tokens"] = c.drafted_tokens();
  line["accepted_tokens"] = c.accepted_tokens();
  return line.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string FormatCompletionLine(const v1::Completion& c) {
  return absl::StrFormat("[%d] %-7s %4d tokens  %s", c.sample_index(),
                         FinishReasonWord(c.finish_reason()), c.token_ids_size(),
                         json(c.text()).dump(-1, ' ', false, json::error_handler_t::replace));
}

std::string GenerateUsage() {
  return "usage: rlctl generate --addr HOST:PORT --prompt TEXT [--n 4] [--temperature 0.7]\n"
         "                      [--max-tokens 256] [--top-p P] [--top-k K] [--seed S]\n"
         "                      [--stop STR[,STR...]] [--token-budget N] [--json]\n"
         "                      [--timeout SECONDS]\n"
         "\n"
         "Samples --n completions of TEXT from the rlpost-rollout worker at HOST:PORT and\n"
         "prints each one as it finishes:\n"
         "  [INDEX] REASON  N tokens  \"TEXT\"\n"
         "where REASON is stop (end of sequence or a stop string), length (--max-tokens\n"
         "or the context), partial (--token-budget ran out) or abort. A summary line\n"
         "follows: completions per reason, tokens, speculative-decoding acceptance and\n"
         "the seed (pass it as --seed to reproduce the group).\n"
         "\n"
         "flags:\n"
         "  --n N                completions to sample (default 4)\n"
         "  --temperature T      in [0, 1000], 0 = greedy (default 0.7)\n"
         "  --max-tokens N       generated tokens per completion; 0 = up to the\n"
         "                       context length (default 256, capped by the context)\n"
         "  --top-p P            nucleus sampling, in [0, 1]; 0 or 1 = off (default off)\n"
         "  --top-k K            keep the K most likely tokens; 0 = off (default off)\n"
         "  --seed S             group seed (default: random, printed in the summary)\n"
         "  --stop STR           stop after the token completing STR (repeatable;\n"
         "                       commas separate strings; C escapes such as \\n and\n"
         "                       \\x2c (a comma) are decoded)\n"
         "  --token-budget N     tokens each completion may generate in this call;\n"
         "                       the rest comes back partial (default 0 = no limit)\n"
         "  --json               one JSON object per completion instead: sample_index,\n"
         "                       text, token_ids, finish_reason, logprobs,\n"
         "                       weight_versions, drafted_tokens, accepted_tokens\n"
         "                       (the summary goes to stderr)\n"
         "  --timeout SECONDS    deadline of the call (default 600)\n"
         "  --tls-ca FILE        call the worker over TLS, verifying it with this CA\n"
         "  --tls-cert FILE, --tls-key FILE  client certificate (mutual TLS)\n"
         "\n"
         "exit status: 0 success, 1 the worker refused or failed the call (its message on\n"
         "stderr), 2 usage error, 3 no worker answered at HOST:PORT.\n";
}

int RunGenerateCommand(const std::vector<std::string>& args, std::ostream& out,
                       std::ostream& err) {
  absl::StatusOr<GenerateFlags> flags = ParseGenerateFlags(args, std::random_device()());
  if (!flags.ok()) {
    err << "rlctl generate: " << flags.status().message() << "\n" << GenerateUsage();
    return kRlctlUsage;
  }
  if (flags->help) {
    out << GenerateUsage();
    return kRlctlOk;
  }
  if (absl::Status t = SetProcessTls(flags->tls); !t.ok()) {
    err << "rlctl generate: " << t.message() << "\n";
    return kRlctlUsage;
  }
  auto stub = v1::RolloutService::NewStub(MakeChannel(flags->addr));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(flags->timeout_s * 1000)));
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader =
      stub->Generate(&context, flags->request);

  std::map<v1::FinishReason, int> reasons;
  int completions = 0;
  int64_t tokens = 0, drafted = 0, accepted = 0;
  v1::GenerateResponse response;
  while (reader->Read(&response)) {
    const v1::Completion& c = response.completion();
    out << (flags->json ? FormatCompletionJson(c) : FormatCompletionLine(c)) << "\n";
    out.flush();
    ++completions;
    ++reasons[c.finish_reason()];
    tokens += c.token_ids_size();
    drafted += c.drafted_tokens();
    accepted += c.accepted_tokens();
  }
  const grpc::Status rpc = reader->Finish();
  if (rpc.error_code() == grpc::StatusCode::UNAVAILABLE) {
    err << "rlctl generate: rollout worker at " << flags->addr
        << " unreachable: " << rpc.error_message() << "\n";
    return kRlctlUnreachable;
  }
  if (!rpc.ok()) {
    err << "rlctl generate: "
        << absl::StatusCodeToString(static_cast<absl::StatusCode>(rpc.error_code())) << ": "
        << rpc.error_message() << "\n";
    return kRlctlRpcError;
  }

  std::vector<std::string> counts;
  for (const auto& [reason, count] : reasons) {
    counts.push_back(absl::StrCat(FinishReasonWord(reason), " ", count));
  }
  const std::string acceptance =
      drafted > 0 ? absl::StrFormat("acceptance %.1f%% (%d of %d drafted tokens)",
                                    100.0 * static_cast<double>(accepted) /
                                        static_cast<double>(drafted),
                                    accepted, drafted)
                  : std::string("no drafted tokens");
  (flags->json ? err : out) << absl::StrFormat(
      "%d completions (%s), %d tokens, %s, seed %d\n", completions,
      absl::StrJoin(counts, ", "), tokens, acceptance, flags->request.params().seed());
  return kRlctlOk;
}

}  // namespace rlpost
