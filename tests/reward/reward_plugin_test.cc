// The reward plugin ABI end to end: plugins written in plain C (conformance,
// misbehaving, wrong ABI version) and the C++ SDK example, loaded in process
// by the loader and out of process by RewardPluginRunner through a real
// rlpost-reward-host.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "reward/plugin_loader.h"
#include "reward/plugin_runner.h"
#include "tests/cli/cli_test_util.h"

namespace rlpost {
namespace {

using ::testing::HasSubstr;
using testing::BinDir;
using testing::MakeTempDir;

PluginSample MakeSample(std::string response, uint32_t group, uint32_t index) {
  PluginSample s;
  s.prompt = "What is 2+2?";
  s.response = std::move(response);
  s.reference = "4";
  s.prompt_id = "p" + std::to_string(group);
  s.verdict = "correct";
  s.finish_reason = "stop";
  s.response_token_ids = {5, 6, 7};
  s.max_response_tokens = 64;
  s.group = group;
  s.index_in_group = index;
  s.correct = true;
  s.verifier_score = 1.0;
  return s;
}

TEST(RewardPluginLoaderTest, ConformancePluginSeesEveryField) {
  auto plugin = LoadedPlugin::Open(RLPOST_PLUGIN_CONFORMANCE);
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  EXPECT_EQ((*plugin)->name(), "conformance");
  EXPECT_EQ((*plugin)->version(), "1.2.3");
  EXPECT_EQ((*plugin)->abi_major(), 1);
  EXPECT_EQ((*plugin)->abi_minor(), 0);
  EXPECT_THAT((*plugin)->functions(), ::testing::ElementsAre("field_echo", "constant"));

  auto echo = (*plugin)->NewFunction("field_echo", "");
  ASSERT_TRUE(echo.ok()) << echo.status();
  PluginSample a = MakeSample("abcde", 2, 3);
  PluginSample b = MakeSample("", 0, 0);
  b.correct = false;
  b.verifier_score = 0.5;
  b.response_token_ids.clear();
  auto scores = (*echo)->Score({a, b});
  ASSERT_TRUE(scores.ok()) << scores.status();
  ASSERT_EQ(scores->size(), 2u);
  // response_size + 1000 tokens + 0.5 correct + score/10 + 1e6 group + 1e-3 index
  EXPECT_DOUBLE_EQ((*scores)[0], 5 + 3000 + 0.5 + 0.1 + 2e6 + 3e-3);
  EXPECT_DOUBLE_EQ((*scores)[1], 0.05);
  // An empty batch is a batch.
  auto none = (*echo)->Score({});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());

  auto constant = (*plugin)->NewFunction("constant", "2.5");
  ASSERT_TRUE(constant.ok()) << constant.status();
  auto c = (*constant)->Score({a, a, a});
  ASSERT_TRUE(c.ok());
  EXPECT_THAT(*c, ::testing::ElementsAre(2.5, 2.5, 2.5));
}

TEST(RewardPluginLoaderTest, PluginErrorsComeBackWithTheirMessages) {
  auto plugin = LoadedPlugin::Open(RLPOST_PLUGIN_CONFORMANCE);
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  auto bad_config = (*plugin)->NewFunction("constant", "twelve");
  ASSERT_FALSE(bad_config.ok());
  EXPECT_EQ(bad_config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_config.status().message(), HasSubstr("config must be a number"));
  auto unknown = (*plugin)->NewFunction("nope", "");
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.status().message(), HasSubstr("offers: field_echo, constant"));
  auto failing = (*plugin)->NewFunction("field_echo", "fail");
  ASSERT_TRUE(failing.ok()) << failing.status();
  auto scores = (*failing)->Score({MakeSample("x", 0, 0)});
  ASSERT_FALSE(scores.ok());
  EXPECT_EQ(scores.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(scores.status().message(), HasSubstr("field_echo was told to fail"));
}

TEST(RewardPluginLoaderTest, MajorVersionMismatchIsRejectedBeforeInit) {
  // The plugin's init aborts: reaching it would end this test binary.
  auto plugin = LoadedPlugin::Open(RLPOST_PLUGIN_ABI_V2);
  ASSERT_FALSE(plugin.ok());
  EXPECT_EQ(plugin.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(plugin.status().message(), HasSubstr("built for reward ABI 2.0"));
  EXPECT_THAT(plugin.status().message(), HasSubstr("this rlpost speaks 1.0"));
}

TEST(RewardPluginLoaderTest, NotAPluginOrNoFile) {
  auto no_entry = LoadedPlugin::Open(RLPOST_PLUGIN_NO_ENTRY);
  ASSERT_FALSE(no_entry.ok());
  EXPECT_THAT(no_entry.status().message(), HasSubstr("does not export rlpost_reward_plugin_entry"));
  auto missing = LoadedPlugin::Open("/nonexistent/libnothing.so");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("cannot load reward plugin"));
}

TEST(RewardPluginLoaderTest, SdkExamplePlugin) {
  auto plugin = LoadedPlugin::Open(RLPOST_PLUGIN_EXAMPLE);
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  EXPECT_EQ((*plugin)->name(), "example");
  EXPECT_THAT((*plugin)->functions(), ::testing::ElementsAre("digit_match", "banned_phrases"));
  auto digits = (*plugin)->NewFunction("digit_match", "scale=2");
  ASSERT_TRUE(digits.ok()) << digits.status();
  PluginSample s = MakeSample("so \\boxed{124}", 0, 0);
  s.reference = "123";
  PluginSample exact = MakeSample("\\boxed{123}", 0, 1);
  exact.reference = "123";
  PluginSample none = MakeSample("no answer", 0, 2);
  none.reference = "123";
  auto scores = (*digits)->Score({s, exact, none});
  ASSERT_TRUE(scores.ok()) << scores.status();
  EXPECT_THAT(*scores, ::testing::ElementsAre(2.0 * 2 / 3, 2.0, 0.0));

  auto banned = (*plugin)->NewFunction("banned_phrases", "phrases=um|uh, penalty=0.25, cap=0.6");
  ASSERT_TRUE(banned.ok()) << banned.status();
  auto b = (*banned)->Score({MakeSample("um, uh", 0, 0), MakeSample("um um um um", 0, 1),
                             MakeSample("clean", 0, 2)});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_THAT(*b, ::testing::ElementsAre(-0.5, -0.6, 0.0));

  auto bad = (*plugin)->NewFunction("digit_match", "scale=abc");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("scale must be a number, got 'abc'"));
  auto unknown_key = (*plugin)->NewFunction("banned_phrases", "phrases=a, colour=red");
  ASSERT_FALSE(unknown_key.ok());
  EXPECT_THAT(unknown_key.status().message(), HasSubstr("unknown key 'colour'"));
}

v1::RewardSample Wire(const std::string& response, uint32_t group, uint32_t index) {
  v1::RewardSample s;
  s.set_prompt("q");
  s.set_response(response);
  s.set_reference("4");
  s.set_prompt_id("p" + std::to_string(group));
  s.set_group(group);
  s.set_index_in_group(index);
  s.set_verdict("wrong");
  return s;
}

RewardPluginRunner::Options TrapOptions(const std::string& work_dir, int64_t deadline_ms) {
  RewardPluginRunner::Options o;
  o.plugin.id = "trap";
  o.plugin.path = RLPOST_PLUGIN_TRAP;
  o.plugin.deadline_ms = deadline_ms;
  o.host_binary = BinDir() + "/rlpost-reward-host";
  o.work_dir = work_dir;
  return o;
}

TEST(RewardPluginRunnerTest, ContainsCrashHangNanWrongCountAndErrors) {
  const std::string dir = MakeTempDir("reward_runner");
  auto runner = RewardPluginRunner::Start(TrapOptions(dir, 3000));
  ASSERT_TRUE(runner.ok()) << runner.status();
  RewardPluginRunner& r = **runner;
  EXPECT_EQ(r.info().plugin_name(), "trap");
  EXPECT_EQ(r.info().function(), "trap");

  auto ok = r.Score({Wire("fine", 0, 0), Wire("also fine", 0, 1)});
  EXPECT_THAT(ok.scores, ::testing::ElementsAre(1.0, 1.0));
  EXPECT_THAT(ok.failures, ::testing::ElementsAre("", ""));

  // NaN fails only its own sample.
  auto nan = r.Score({Wire("fine", 0, 0), Wire("NAN here", 0, 1), Wire("fine", 1, 0)});
  EXPECT_EQ(nan.failures[0], "");
  EXPECT_THAT(nan.failures[1], HasSubstr("reward plugin 'trap': returned a non-finite score"));
  EXPECT_EQ(nan.failures[2], "");
  EXPECT_EQ(nan.scores[2], 1.0);

  // The wrong number of scores fails the batch.
  auto short_batch = r.Score({Wire("fine", 0, 0), Wire("SHORT", 0, 1), Wire("fine", 0, 2)});
  for (const std::string& f : short_batch.failures) {
    EXPECT_THAT(f, HasSubstr("returned 2 scores for 3 samples"));
  }
  // A plugin error fails the batch; the host keeps serving.
  auto error = r.Score({Wire("ERROR", 0, 0)});
  EXPECT_THAT(error.failures[0], HasSubstr("trap: told to fail"));
  EXPECT_EQ(r.restarts(), 0);

  // A crash fails the batch; the next batch gets a new host.
  auto crash = r.Score({Wire("fine", 0, 0), Wire("CRASH", 0, 1)});
  EXPECT_THAT(crash.failures[0], HasSubstr("plugin host crashed (signal 11) while scoring"));
  EXPECT_THAT(crash.failures[1], HasSubstr("crashed"));
  auto after_crash = r.Score({Wire("fine", 0, 0)});
  EXPECT_THAT(after_crash.failures, ::testing::ElementsAre(""));
  EXPECT_EQ(after_crash.scores[0], 1.0);
  EXPECT_EQ(r.restarts(), 1);

  // A hang past the deadline fails the batch and restarts the host.
  auto hang = r.Score({Wire("HANG", 0, 0)});
  EXPECT_THAT(hang.failures[0], HasSubstr("deadline of 3000 ms exceeded"));
  EXPECT_THAT(hang.failures[0], HasSubstr("reward.plugins.trap.deadline_ms"));
  auto after_hang = r.Score({Wire("fine", 3, 0)});
  EXPECT_THAT(after_hang.failures, ::testing::ElementsAre(""));
  EXPECT_EQ(r.restarts(), 2);
  EXPECT_EQ(r.failed_batches(), 4);  // short, error, crash, hang
}

// reward.plugins.<id>.memory_mb caps the host's data memory: a plugin that
// allocates past it gets NULL (here: fails the batch with its own message)
// instead of taking the node's memory; under a larger cap the same batch
// scores.
TEST(RewardPluginRunnerTest, MemoryLimitStopsAPluginThatAllocatesTooMuch) {
  const std::string dir = MakeTempDir("reward_runner_memory");
  RewardPluginRunner::Options small = TrapOptions(dir, 10000);
  small.plugin.memory_mb = 256;
  auto capped = RewardPluginRunner::Start(small);
  ASSERT_TRUE(capped.ok()) << capped.status();
  auto hog = (*capped)->Score({Wire("HOG", 0, 0)});
  EXPECT_THAT(hog.failures[0], HasSubstr("trap: out of memory"));
  auto after = (*capped)->Score({Wire("fine", 0, 0)});
  EXPECT_THAT(after.failures, ::testing::ElementsAre(""));

  RewardPluginRunner::Options large = TrapOptions(dir + "/large", 10000);
  large.plugin.memory_mb = 2048;
  auto roomy = RewardPluginRunner::Start(large);
  ASSERT_TRUE(roomy.ok()) << roomy.status();
  auto fits = (*roomy)->Score({Wire("HOG", 0, 0)});
  EXPECT_THAT(fits.failures, ::testing::ElementsAre(""));
  EXPECT_EQ(fits.scores[0], 1.0);
}

TEST(RewardPluginRunnerTest, StartErrorsNameThePluginAndTheReason) {
  const std::string dir = MakeTempDir("reward_runner_errors");
  RewardPluginRunner::Options v2 = TrapOptions(dir, 1000);
  v2.plugin.id = "future";
  v2.plugin.path = RLPOST_PLUGIN_ABI_V2;
  auto future = RewardPluginRunner::Start(v2);
  ASSERT_FALSE(future.ok());
  EXPECT_THAT(future.status().message(), HasSubstr("reward plugin 'future'"));
  EXPECT_THAT(future.status().message(), HasSubstr("built for reward ABI 2.0"));

  RewardPluginRunner::Options missing = TrapOptions(dir, 1000);
  missing.plugin.path = dir + "/libmissing.so";
  auto m = RewardPluginRunner::Start(missing);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(), HasSubstr("config key 'reward.plugins.trap.path'"));

  RewardPluginRunner::Options bad_config = TrapOptions(dir, 1000);
  bad_config.plugin.id = "example";
  bad_config.plugin.path = RLPOST_PLUGIN_EXAMPLE;
  bad_config.plugin.function = "digit_match";
  bad_config.plugin.config = "scale=";
  auto b = RewardPluginRunner::Start(bad_config);
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(b.status().message(), HasSubstr("scale must be a number"));
}

}  // namespace
}  // namespace rlpost
