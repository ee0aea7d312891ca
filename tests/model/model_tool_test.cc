// The shipped binaries rlpost-model and rlpost-bench, run as a user would.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"
#include "tests/cli/cli_test_util.h"

namespace rlpost {
namespace {

using ::testing::HasSubstr;
using ::rlpost::testing::BinDir;
using ::rlpost::testing::ProcessResult;
using ::rlpost::testing::RunProcess;
namespace fs = std::filesystem;

// Runs a binary from RLPOST_BIN_DIR, stdout and stderr together; `args` are
// split on spaces (these tests need no quoting).
ProcessResult RunTool(const std::string& args) {
  std::vector<std::string> argv = absl::StrSplit(args, ' ', absl::SkipEmpty());
  argv[0] = BinDir() + "/" + argv[0];
  const fs::path log =
      fs::temp_directory_path() / ("rlpost_model_tool_" + std::to_string(::getpid()) + ".log");
  ProcessResult r = RunProcess(argv, log.string());
  fs::remove(log);
  return r;
}

class ModelToolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("rlpost_model_tool_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(ModelToolTest, InitInspectConvertAndLogits) {
  nlohmann::json config = {{"model_type", "qwen2_moe"},  {"vocab_size", 40},
                           {"hidden_size", 32},          {"num_hidden_layers", 2},
                           {"num_attention_heads", 4},   {"num_key_value_heads", 2},
                           {"num_experts", 4},           {"num_experts_per_tok", 2},
                           {"moe_intermediate_size", 16}, {"intermediate_size", 48},
                           {"shared_expert_intermediate_size", 24}, {"rlpost_init_seed", 5}};
  std::ofstream(Path("config.json")) << config.dump();
  ProcessResult init = RunTool("rlpost-model init " + Path("config.json") + " " + Path("fp32"));
  ASSERT_EQ(init.exit_code, 0) << init.output;
  EXPECT_THAT(init.output, HasSubstr("qwen2_moe layers=2 d=32"));

  ProcessResult convert = RunTool("rlpost-model convert " + Path("fp32") + " " + Path("bf16") +
                       " --dtype bfloat16 --max-shard-bytes 4000");
  ASSERT_EQ(convert.exit_code, 0) << convert.output;
  EXPECT_TRUE(fs::exists(dir_ / "bf16" / "model.safetensors.index.json"));
  ProcessResult inspect = RunTool("rlpost-model inspect " + Path("bf16"));
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_THAT(inspect.output, HasSubstr("shared=24"));

  ProcessResult a = RunTool("rlpost-model logits " + Path("fp32") + " 1 7 9");
  ProcessResult b = RunTool("rlpost-model logits " + Path("fp32") + " 1 7 9");
  ASSERT_EQ(a.exit_code, 0) << a.output;
  nlohmann::json logits = nlohmann::json::parse(a.output);
  ASSERT_EQ(logits.size(), 3u);
  EXPECT_EQ(logits[0].size(), 40u);
  EXPECT_EQ(a.output, b.output);  // deterministic

  ProcessResult bad_id = RunTool("rlpost-model logits " + Path("fp32") + " 1 40");
  EXPECT_EQ(bad_id.exit_code, 1);
  EXPECT_THAT(bad_id.output, HasSubstr("token id 40 is out of range: vocab_size is 40"));
}

TEST_F(ModelToolTest, BadInputGivesClearErrors) {
  ProcessResult missing = RunTool("rlpost-model inspect " + Path("nowhere"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.output, HasSubstr("config.json"));

  std::ofstream(Path("llama.json")) << R"({"model_type": "llama"})";
  ProcessResult llama = RunTool("rlpost-model init " + Path("llama.json") + " " + Path("out"));
  EXPECT_EQ(llama.exit_code, 1);
  EXPECT_THAT(llama.output, HasSubstr("supported: qwen3_moe, qwen2_moe, mixtral, olmoe"));

  ProcessResult usage = RunTool("rlpost-model frobnicate");
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_THAT(usage.output, HasSubstr("unknown command 'frobnicate'"));
  ProcessResult dtype = RunTool("rlpost-model convert a b --dtype int8");
  EXPECT_EQ(dtype.exit_code, 2);
  EXPECT_THAT(dtype.output, HasSubstr("--dtype must be float32 or bfloat16"));
}

TEST(ModelBenchTest, QuickRunPrintsOneJsonObject) {
  ProcessResult r = RunTool("rlpost-bench model --quick --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json report = nlohmann::json::parse(r.output);
  EXPECT_EQ(report["benchmark"], "model");
  ASSERT_EQ(report["configs"].size(), 2u);
  EXPECT_EQ(report["configs"][1]["throughput"].size(), 3u);
  EXPECT_GT(report["configs"][1]["total_params"].get<int64_t>(), 90'000'000);
  EXPECT_GT(report["moe_efficiency"].get<double>(), 0.0);
  EXPECT_EQ(RunTool("rlpost-bench model --bogus").exit_code, 2);
}

}  // namespace
}  // namespace rlpost
