#include "common/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "common/run_config.h"

namespace rlpost {
namespace {

using ::testing::HasSubstr;

TEST(ConfigTest, DefaultsWhenNoFile) {
  absl::StatusOr<RunConfig> r = LoadRunConfig("", {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rl_group_size, 8);
  EXPECT_EQ(r->learner_world_size, 1);
}

TEST(ConfigTest, YamlAndOverridesApplyInOrder) {
  absl::StatusOr<Config> c = Config::FromYaml(RunConfigSchema(),
                                              "rl:\n  group_size: 4\nrun:\n  name: x\n", "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->ApplyOverride("rl.group_size=6").ok());
  absl::StatusOr<RunConfig> r = ParseRunConfig(*c);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rl_group_size, 6);
  EXPECT_EQ(r->name, "x");
}

TEST(ConfigTest, UnknownKeyInFileNamesKeyAndFile) {
  absl::StatusOr<Config> c =
      Config::FromYaml(RunConfigSchema(), "rl:\n  group_sise: 4\n", "configs/x.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("rl.group_sise"));
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("configs/x.yaml"));
}

TEST(ConfigTest, UnknownOverrideNamesCommandLine) {
  absl::StatusOr<RunConfig> r = LoadRunConfig("", {"learner.ranks=2"});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("learner.ranks"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("command line"));
}

TEST(ConfigTest, WrongTypeIsRejected) {
  absl::StatusOr<RunConfig> r = LoadRunConfig("", {"rl.steps=many"});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("must be an integer"));
}

TEST(ConfigTest, MalformedOverride) {
  absl::StatusOr<RunConfig> r = LoadRunConfig("", {"rl.steps"});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("key=value"));
}

TEST(ConfigTest, YamlSyntaxErrorHasLine) {
  absl::StatusOr<Config> c =
      Config::FromYaml(RunConfigSchema(), "rl:\n  steps: [1,\n", "bad.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("bad.yaml"));
}

TEST(ConfigTest, MissingFile) {
  absl::StatusOr<RunConfig> r = LoadRunConfig("/nonexistent/x.yaml", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("/nonexistent/x.yaml"));
}

TEST(ConfigTest, RangeChecks) {
  absl::StatusOr<RunConfig> r = LoadRunConfig("", {"model.top_k=9"});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("model.top_k"));
  r = LoadRunConfig("", {"rl.group_size=0"});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("rl.group_size"));
}

TEST(ConfigTest, ChoiceKeysListTheValidValues) {
  struct Case {
    std::string override_arg, expected;
  };
  for (const Case& c : std::vector<Case>{
           {"rl.advantage=ppo", "grpo, dr_grpo, rloo, reinforce_pp, reinforce_pp_baseline or gae"},
           {"rl.value_warmup_steps=3", "needs a critic: set rl.advantage=gae"},
           {"rl.kl_reward_coef=0.1", "rl.kl_reward_coef' needs a critic"},
           {"rl.gae_lambda=1.5", "rl.gae_lambda' must be in [0, 1]"},
           {"rl.value_clip=-1", "rl.value_clip"},
           {"rollout.drafter=eagle", "none, ngram, mtp or draft"},
           {"rollout.drafter=mtp", "model.mtp_layers=1"},
           {"rollout.max_draft_tokens=17", "[0, 16]"},
           {"rl.loss_agg=sum", "token-mean, seq-mean-token-mean or seq-mean-token-sum-norm"},
           {"rl.kl_estimator=k4", "k1, k2 or k3"},
           {"rl.ratio=batch", "token or sequence"},
           {"rl.dual_clip=0.5", "greater than 1"},
           {"rl.kl_coef=-1", "rl.kl_coef"},
       }) {
    absl::StatusOr<RunConfig> r = LoadRunConfig("", {c.override_arg});
    ASSERT_FALSE(r.ok()) << c.override_arg;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.expected)) << c.override_arg;
  }
  absl::StatusOr<RunConfig> ok =
      LoadRunConfig("", {"rl.advantage=rloo", "model.mtp_layers=1", "rollout.drafter=mtp"});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->rl_advantage, "rloo");
  EXPECT_EQ(ok->rollout_drafter, "mtp");
  ok = LoadRunConfig("", {"rl.advantage=gae", "rl.value_warmup_steps=5", "rl.critic_lr=1e-3"});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->rl_value_warmup_steps, 5);
}

TEST(ConfigTest, StalenessBoundBelongsToAsyncMode) {
  absl::StatusOr<RunConfig> r = LoadRunConfig("", {"rl.max_staleness=2"});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("'rl.max_staleness' (2) bounds async mode only, but rl.mode is sync"));
  r = LoadRunConfig("", {"rl.mode=pipelined"});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("'rl.mode' must be sync or async"));
  r = LoadRunConfig("", {"rl.mode=async", "rl.max_staleness=3"});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("'learner.retained_versions' (3) must be at least rl.max_staleness + 1"));
  r = LoadRunConfig("", {"rl.mode=async"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rl_max_staleness, 1);  // async's default bound
  r = LoadRunConfig("", {"rl.mode=async", "rl.max_staleness=3", "learner.retained_versions=4"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rl_max_staleness, 3);
  EXPECT_EQ(LoadRunConfig("", {})->rl_max_staleness, 0);
}

TEST(ConfigTest, CpuListsParseAndBadOnesNameTheKey) {
  EXPECT_EQ(*ParseCpuList("0-3,6,2"), (std::vector<int>{0, 1, 2, 3, 6}));
  EXPECT_TRUE(ParseCpuList("")->empty());
  for (const char* bad : {"x", "3-1", "-1", "1,,2", "0-2000"}) {
    EXPECT_FALSE(ParseCpuList(bad).ok()) << bad;
  }
  absl::StatusOr<RunConfig> r = LoadRunConfig("", {"learner.cpus=1-"});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("config key 'learner.cpus': '1-' is not a CPU list"));
  r = LoadRunConfig("", {"rollout.cpus=0", "learner.cpus=1", "verifier.cpus=0-1"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rollout_cpus, std::vector<int>{0});
  EXPECT_EQ(r->verifier_cpus, (std::vector<int>{0, 1}));
}

TEST(ConfigTest, ShippedConfigsLoad) {
  std::string root = std::getenv("RLPOST_SOURCE_DIR") ? std::getenv("RLPOST_SOURCE_DIR") : ".";
  for (const char* name : {"/configs/arith_grpo.yaml", "/configs/arith_grpo_quick.yaml",
                           "/configs/arith_grpo_shaped.yaml", "/deploy/k8s/base/run.yaml",
                           "/deploy/k8s/overlays/gpu-cluster/run.yaml"}) {
    absl::StatusOr<RunConfig> r = LoadRunConfig(root + name, {});
    EXPECT_TRUE(r.ok()) << name << ": " << r.status();
  }
}

TEST(ConfigTest, RewardPluginFamiliesLoadFromYamlAndOverrides) {
  const std::string path = ::testing::TempDir() + "/plugins.yaml";
  {
    std::ofstream out(path);
    out << "reward:\n  length: 0.1\n  plugins:\n    digits:\n      path: libx.so\n"
           "      function: digit_match\n      weight: 0.2\n      config: \"scale=1\"\n"
           "    banned-2:\n      path: /opt/liby.so\n";
  }
  absl::StatusOr<RunConfig> r =
      LoadRunConfig(path, {"reward.plugins.digits.deadline_ms=500", "rl.max_new_tokens=100"});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->reward_plugins.size(), 2u);
  EXPECT_EQ(r->reward_plugins[0].id, "banned-2");
  EXPECT_EQ(r->reward_plugins[0].path, "/opt/liby.so");
  EXPECT_EQ(r->reward_plugins[0].weight, 1.0);  // the family's default
  EXPECT_EQ(r->reward_plugins[0].deadline_ms, 10000);
  EXPECT_EQ(r->reward_plugins[1].id, "digits");
  EXPECT_EQ(r->reward_plugins[1].function, "digit_match");
  EXPECT_EQ(r->reward_plugins[1].weight, 0.2);
  EXPECT_EQ(r->reward_plugins[1].config, "scale=1");
  EXPECT_EQ(r->reward_plugins[1].deadline_ms, 500);
  EXPECT_EQ(r->reward_length, 0.1);
  // Overlong defaults follow the generation budget.
  EXPECT_EQ(r->reward_overlong_max_tokens, 100);
  EXPECT_EQ(r->reward_overlong_buffer_tokens, 20);

  // Bad input names the key.
  absl::StatusOr<RunConfig> bad = LoadRunConfig("", {"reward.plugins.x.weight=2"});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("config key 'reward.plugins.x.path' is required"));
  bad = LoadRunConfig("", {"reward.plugins.x.path=a.so", "reward.plugins.x.deadline_ms=0"});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("'reward.plugins.x.deadline_ms'"));
  bad = LoadRunConfig("", {"reward.plugins.x.colour=red"});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("unknown config key 'reward.plugins.x.colour'"));
  bad = LoadRunConfig("", {"reward.plugins.a.b.path=x.so"});
  ASSERT_FALSE(bad.ok());
  bad = LoadRunConfig("", {"reward.overlong_buffer_tokens=60", "reward.overlong_max_tokens=50"});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("reward.overlong_buffer_tokens"));
  bad = LoadRunConfig("", {"reward.repetition_ngram=0"});
  ASSERT_FALSE(bad.ok());
}

TEST(ConfigTest, EveryKeyIsDocumented) {
  const char* root = std::getenv("RLPOST_SOURCE_DIR");
  if (root == nullptr) GTEST_SKIP() << "RLPOST_SOURCE_DIR is not set (run through ctest)";
  std::ifstream in(std::string(root) + "/docs/configuration.md");
  ASSERT_TRUE(in) << "docs/configuration.md not found";
  const std::string docs((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const ConfigKey& k : RunConfigSchema().keys()) {
    std::string key = k.key;
    const size_t star = key.find('*');
    if (star != std::string::npos) key.replace(star, 1, "<id>");
    EXPECT_NE(docs.find("`" + key + "`"), std::string::npos)
        << key << " is missing from docs/configuration.md";
  }
}

TEST(ConfigTest, ToYamlRoundTrips) {
  Config c(RunConfigSchema());
  ASSERT_TRUE(c.ApplyOverride("rl.steps=7").ok());
  absl::StatusOr<Config> back = Config::FromYaml(RunConfigSchema(), c.ToYaml(), "round trip");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->GetInt("rl.steps"), 7);
  EXPECT_EQ(back->values(), c.values());
}

}  // namespace
}  // namespace rlpost
