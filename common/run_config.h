#pragma once
// The run configuration shared by the launcher, the controller, the rollout
// workers and the learner: one schema, one YAML file, key=value overrides.
// Every key is listed with its meaning in docs/configuration.md.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config.h"

namespace rlpost {

// The schema of every run config key.
const ConfigSchema& RunConfigSchema();

struct ModelShape {
  int64_t n_layers = 2;
  int64_t d_model = 96;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 2;
  int64_t n_experts = 4;
  int64_t top_k = 2;
  int64_t expert_hidden = 128;
  int64_t max_seq_len = 96;
  double rope_theta = 10000.0;
  int64_t init_seed = 7;
  int64_t mtp_layers = 0;  // 1: a multi-token-prediction block (docs/model.md)
};

// reward.plugins.<id>.*: one plugin reward function, run in its own
// rlpost-reward-host process.
struct RewardPluginConfig {
  std::string id;
  std::string path;
  std::string function;  // empty: the plugin's first
  double weight = 1.0;
  std::string config;
  int64_t deadline_ms = 10000;
  int64_t memory_mb = 2048;  // the host's RLIMIT_DATA; 0 = none
};

struct RunConfig {
  // run
  std::string name = "arith_grpo";
  uint64_t seed = 1234;
  std::string output_dir = "runs";
  int64_t run_lineage_file_mb = 64;
  int64_t run_checkpoint_every = 0;  // RL steps; 0 = only the final checkpoint
  int64_t run_keep_checkpoints = 3;
  bool run_resume = false;
  // <output_dir>/<name>/checkpoints: where periodic checkpoints go and a
  // resumed run starts from.
  std::string CheckpointRoot() const { return output_dir + "/" + name + "/checkpoints"; }
  // task
  std::string task_kind = "arith";   // "arith" (built-in) or "jsonl"
  std::string task_train_path;       // jsonl train set
  std::string task_heldout_path;     // jsonl held-out set
  int64_t task_train_size = 4000;
  int64_t task_heldout_size = 200;
  int64_t task_max_operand = 999;
  // model
  ModelShape model;
  // sft warm start
  int64_t sft_steps = 300;
  int64_t sft_batch_size = 32;
  double sft_lr = 3e-3;
  // rl
  int64_t rl_steps = 80;
  int64_t rl_prompts_per_step = 16;
  int64_t rl_group_size = 8;
  double rl_lr = 2e-4;
  double rl_clip_eps = 0.2;
  double rl_temperature = 1.0;
  double rl_top_p = 1.0;
  int64_t rl_max_new_tokens = 48;
  bool rl_skip_uniform_groups = true;
  int64_t rl_dynamic_sampling_rounds = 0;
  int64_t rl_group_deadline_ms = 0;            // 0: no straggler deadline
  std::string rl_straggler_policy = "resample";  // or "drop"
  int64_t run_restart_limit = 3;  // launcher: restarts per crashed service
  int64_t heartbeat_ms = 2000;
  int64_t heartbeat_timeout_ms = 10000;
  int64_t rl_oversample_groups = 0;             // extra groups cut at the long tail
  int64_t rl_partial_rollout_tokens = 0;        // 0: partial rollouts off
  int64_t rl_partial_rollout_max_carries = 2;
  std::string rl_mode = "sync";                 // or "async"
  // Weight versions a trained sample's oldest token may lag the learner's
  // version at the step that trains it: 0 in sync mode, >= 1 in async mode.
  int64_t rl_max_staleness = 0;
  bool rl_router_replay = false;
  std::string rl_objective = "pg";            // or "rft"
  std::string rl_rft_select = "best_of_n";    // or "shortest_correct"
  bool rl_drop_truncated = false;
  bool rl_require_format = false;
  std::string rl_advantage = "grpo";  // learner/advantages.h names
  double rl_gae_gamma = 1.0;
  double rl_gae_lambda = 0.95;
  double rl_gae_lambda_critic = 1.0;
  double rl_gae_length_adaptive_alpha = 0.0;
  bool rl_whiten_advantages = true;
  double rl_value_clip = 0.2;
  double rl_critic_lr = 0.0;  // 0: rl_lr
  int64_t rl_value_warmup_steps = 0;
  double rl_kl_reward_coef = 0.0;
  double rl_clip_high = 0.0;          // 0: rl_clip_eps
  int64_t rl_lr_warmup_steps = 0;
  std::string rl_lr_schedule = "constant";  // or "cosine"
  double rl_lr_min_ratio = 0.1;
  double rl_dual_clip = 0.0;
  std::string rl_ratio = "token";     // or "sequence" (GSPO)
  std::string rl_loss_agg = "token-mean";
  double rl_tis_cap = 0.0;
  double rl_kl_coef = 0.0;
  std::string rl_kl_estimator = "k3";
  double rl_entropy_coef = 0.0;
  double rl_nll_coef = 0.0;
  double rl_aux_loss_coef = 0.01;
  double rl_router_z_loss_coef = 0.0;
  // reward
  double reward_correct = 1.0;
  double reward_format = 0.0;
  bool reward_format_think = false;
  double reward_overlong = 0.0;
  int64_t reward_overlong_max_tokens = 48;   // resolved: rl.max_new_tokens when unset
  int64_t reward_overlong_buffer_tokens = 9; // resolved: a fifth of the maximum when unset
  double reward_length = 0.0;
  double reward_repetition = 0.0;
  int64_t reward_repetition_ngram = 4;
  std::vector<RewardPluginConfig> reward_plugins;  // sorted by id
  std::string reward_host_binary;
  // eval
  double eval_temperature = 0.0;
  int64_t eval_size = 200;
  // optimizer
  double weight_decay = 0.0;
  double grad_clip = 1.0;
  // processes
  int64_t rollout_workers = 2;
  int64_t rollout_threads = 1;
  std::vector<int> rollout_cpus;  // pinned by the launcher; empty: any CPU
  std::string rollout_drafter = "none";
  int64_t rollout_max_draft_tokens = 4;
  std::string rollout_device = "cpu";  // "cpu", "cuda" or "cuda:N"
  bool rollout_adaptive = true;
  int64_t rollout_max_batch = 64;
  int64_t rollout_kv_block_size = 16;
  int64_t rollout_kv_blocks = 0;
  int64_t learner_world_size = 1;
  int64_t learner_threads = 1;
  std::string learner_device = "cpu";    // "cpu", "cuda" (device $LOCAL_RANK) or "cuda:N"
  std::string learner_backend = "auto";  // "auto", "gloo" or "nccl"
  std::vector<int> learner_cpus;  // pinned by the launcher; empty: any CPU
  std::vector<int> verifier_cpus;    // pinned by the launcher; empty: any CPU
  std::vector<int> controller_cpus;  // pinned by the launcher; empty: any CPU
  int64_t learner_micro_batch_tokens = 4096;
  bool learner_activation_checkpointing = false;
  int64_t learner_retained_versions = 3;
  std::string learner_dtype = "float32";          // or "bfloat16" (mixed precision)
  std::string learner_publish_dtype = "float32";  // or "bfloat16"
  int64_t learner_rendezvous_timeout_s = 120;
  int64_t verifier_deadline_ms = 5000;
  int64_t rpc_timeout_ms = 120000;
  int64_t connect_retries = 8;
  int64_t connect_backoff_ms = 100;
};

// Reads a RunConfig from a loaded Config (schema RunConfigSchema()) and checks
// value ranges; errors name the key.
absl::StatusOr<RunConfig> ParseRunConfig(const Config& config);

// OK when `value` names a device the way rollout.device and learner.device
// do: "cpu", "cuda" or "cuda:N". Whether the build and the machine have it is
// checked where the device is opened (model/device.h).
// `key` is a config key ("rollout.device") or a flag ("--device").
absl::Status CheckDeviceSpec(const std::string& key, const std::string& value);
// How messages name `key`: "config key 'rollout.device'" or "--device".
std::string DeviceSettingName(const std::string& key);

// Load + parse in one call; `path` may be empty (defaults).
absl::StatusOr<RunConfig> LoadRunConfig(const std::string& path,
                                        const std::vector<std::string>& overrides);

// "0-3,6" -> {0, 1, 2, 3, 6} (sorted, no repeats); "" -> {}.
absl::StatusOr<std::vector<int>> ParseCpuList(const std::string& text);

}  // namespace rlpost
