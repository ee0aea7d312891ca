// rlpost-model: Hugging Face checkpoints from the command line.
//   rlpost-model inspect DIR
//   rlpost-model convert SRC DST [--dtype float32|bfloat16] [--max-shard-bytes N]
//   rlpost-model init CONFIG_JSON DST [--dtype ...] [--max-shard-bytes N]
//   rlpost-model logits DIR TOKEN_ID...
//   rlpost-model tokenize TOKENIZER_JSON TEXT
// Exit status: 0 done, 1 the checkpoint could not be read or written, 2 bad
// arguments.
#include <torch/types.h>
#include <torch/utils.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "model/bpe_tokenizer.h"
#include "model/checkpoint.h"

namespace {

constexpr char kUsage[] =
    "usage:\n"
    "  rlpost-model inspect DIR\n"
    "      load a checkpoint directory (config.json + safetensors) and describe it\n"
    "  rlpost-model convert SRC DST [--dtype float32|bfloat16] [--max-shard-bytes N]\n"
    "      load SRC and write it to DST (Hugging Face layout, sharded past N bytes)\n"
    "  rlpost-model init CONFIG_JSON DST [--dtype ...] [--max-shard-bytes N]\n"
    "      write a randomly initialised checkpoint of the model CONFIG_JSON describes\n"
    "      (seed: config field rlpost_init_seed)\n"
    "  rlpost-model logits DIR TOKEN_ID...\n"
    "      print the float32 logits [T, vocab] of one sequence as JSON (for comparing\n"
    "      with other implementations, e.g. scripts/hf_compare_logits.py)\n"
    "  rlpost-model tokenize TOKENIZER_JSON TEXT\n"
    "      print the token ids of TEXT under a Hugging Face tokenizer.json (no BOS/EOS)\n"
    "model types: qwen3_moe, qwen2_moe, mixtral, olmoe, rlpost_moe\n";

int Usage(const std::string& why) {
  std::cerr << "rlpost-model: " << why << "\n" << kUsage;
  return 2;
}

bool ParseWriteFlags(const std::vector<std::string>& args, size_t from,
                     rlpost::CheckpointWriteOptions* options, std::string* error) {
  for (size_t i = from; i < args.size(); ++i) {
    if (args[i] == "--dtype" && i + 1 < args.size()) {
      const std::string& d = args[++i];
      if (d == "float32") options->dtype = rlpost::RawDType::kFloat32;
      else if (d == "bfloat16") options->dtype = rlpost::RawDType::kBFloat16;
      else return *error = "--dtype must be float32 or bfloat16, got '" + d + "'", false;
    } else if (args[i] == "--max-shard-bytes" && i + 1 < args.size()) {
      int64_t n = 0;
      if (!absl::SimpleAtoi(args[++i], &n) || n <= 0) {
        return *error = "--max-shard-bytes must be a positive integer", false;
      }
      options->max_shard_bytes = n;
    } else {
      return *error = "unknown or incomplete flag '" + args[i] + "'", false;
    }
  }
  return true;
}

void Describe(rlpost::MoeTransformer& model) {
  const int64_t params = model->ParameterCount();
  std::cout << model->config().Describe() << "\n"
            << "parameters: " << params << " (" << model->parameters().size() << " tensors)\n";
}

int Fail(const absl::Status& s) {
  std::cerr << "rlpost-model: " << s.message() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return Usage("missing command");
  if (args[0] == "--help" || args[0] == "-h") {
    std::cout << kUsage;
    return 0;
  }
  const std::string& cmd = args[0];
  if (cmd == "inspect") {
    if (args.size() != 2) return Usage("inspect takes one directory");
    auto model = rlpost::LoadCheckpoint(args[1]);
    if (!model.ok()) return Fail(model.status());
    Describe(*model);
    return 0;
  }
  if (cmd == "convert" || cmd == "init") {
    if (args.size() < 3) return Usage(cmd + " takes a source and a destination");
    rlpost::CheckpointWriteOptions options;
    std::string error;
    if (!ParseWriteFlags(args, 3, &options, &error)) return Usage(error);
    absl::StatusOr<rlpost::MoeTransformer> model = absl::UnknownError("unset");
    if (cmd == "convert") {
      model = rlpost::LoadCheckpoint(args[1]);
    } else {
      auto config = rlpost::ReadConfigJsonFile(args[1]);
      if (!config.ok()) return Fail(config.status());
      model = rlpost::MoeTransformer(*config);
    }
    if (!model.ok()) return Fail(model.status());
    absl::Status s = rlpost::SaveCheckpoint(**model, args[2], options);
    if (!s.ok()) return Fail(s);
    Describe(*model);
    std::cout << "wrote " << args[2] << "\n";
    return 0;
  }
  if (cmd == "tokenize") {
    if (args.size() != 3) return Usage("tokenize takes a tokenizer.json and one text");
    auto tokenizer = rlpost::BpeTokenizer::FromJsonFile(args[1]);
    if (!tokenizer.ok()) return Fail(tokenizer.status());
    auto ids = tokenizer->Encode(args[2]);
    if (!ids.ok()) return Fail(ids.status());
    for (size_t i = 0; i < ids->size(); ++i) std::cout << (i ? " " : "") << (*ids)[i];
    std::cout << "\n";
    return 0;
  }
  if (cmd == "logits") {
    if (args.size() < 3) return Usage("logits takes a directory and token ids");
    std::vector<int> ids;
    for (size_t i = 2; i < args.size(); ++i) {
      int id = 0;
      if (!absl::SimpleAtoi(args[i], &id)) return Usage("token id '" + args[i] + "' is not an integer");
      ids.push_back(id);
    }
    auto model = rlpost::LoadCheckpoint(args[1]);
    if (!model.ok()) return Fail(model.status());
    rlpost::PaddedBatch batch = rlpost::LeftPad({ids});
    absl::Status s = (*model)->CheckTokenIds(batch.tokens);
    if (!s.ok()) return Fail(s);
    torch::NoGradGuard no_grad;
    at::Tensor logits = (*model)->Forward(batch.tokens, batch.positions, batch.mask, nullptr)
                            .logits[0].to(at::kFloat).contiguous();
    std::printf("[");
    for (int64_t t = 0; t < logits.size(0); ++t) {
      std::printf(t == 0 ? "[" : ",\n[");
      const float* row = logits[t].data_ptr<float>();
      for (int64_t v = 0; v < logits.size(1); ++v) std::printf(v == 0 ? "%.9g" : ",%.9g", row[v]);
      std::printf("]");
    }
    std::printf("]\n");
    return 0;
  }
  return Usage("unknown command '" + cmd + "'");
}
