#include "common/run_config.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace rlpost {
namespace {

using T = ConfigType;

std::vector<ConfigKey> Keys() {
  return {
      {"run.name", T::kString, "arith_grpo", "run name; outputs go to <output_dir>/<name>"},
      {"run.seed", T::kInt, "1234", "seed of every random choice of the run"},
      {"run.output_dir", T::kString, "runs", "directory holding run folders"},
      {"task.kind", T::kString, "arith", "arith (built-in generator) or jsonl"},
      {"task.train_path", T::kString, "", "jsonl train set (task.kind=jsonl)"},
      {"task.heldout_path", T::kString, "", "jsonl held-out set (task.kind=jsonl)"},
      {"task.train_size", T::kInt, "4000", "built-in task: train problems"},
      {"task.heldout_size", T::kInt, "200", "built-in task: held-out problems"},
      {"task.max_operand", T::kInt, "999", "built-in task: largest operand"},
      {"model.n_layers", T::kInt, "2", "decoder blocks"},
      {"model.d_model", T::kInt, "96", "hidden size"},
      {"model.n_heads", T::kInt, "4", "attention heads"},
      {"model.n_kv_heads", T::kInt, "2", "key/value heads (grouped-query attention)"},
      {"model.n_experts", T::kInt, "4", "routed experts per MoE layer"},
      {"model.top_k", T::kInt, "2", "experts per token"},
      {"model.expert_hidden", T::kInt, "128", "hidden size of each SwiGLU expert"},
      {"model.max_seq_len", T::kInt, "96", "context length"},
      {"model.rope_theta", T::kDouble, "10000", "rotary embedding base"},
      {"model.init_seed", T::kInt, "7", "seed of the initial weights"},
      {"model.mtp_layers", T::kInt, "0", "multi-token-prediction blocks (0 or 1)"},
      {"sft.steps", T::kInt, "300", "supervised warm-start steps before RL"},
      {"sft.batch_size", T::kInt, "32", "warm-start batch size"},
      {"sft.lr", T::kDouble, "0.003", "warm-start learning rate"},
      {"rl.steps", T::kInt, "80", "GRPO steps"},
      {"rl.prompts_per_step", T::kInt, "16", "prompts per step (B)"},
      {"rl.group_size", T::kInt, "8", "samples per prompt (G)"},
      {"rl.lr", T::kDouble, "0.0002", "policy learning rate"},
      {"rl.lr_warmup_steps", T::kInt, "0", "linear learning-rate warmup (RL steps)"},
      {"rl.lr_schedule", T::kString, "constant", "after warmup: constant or cosine"},
      {"rl.lr_min_ratio", T::kDouble, "0.1", "cosine floor as a fraction of rl.lr"},
      {"rl.clip_eps", T::kDouble, "0.2", "PPO clip range (the low side with rl.clip_high)"},
      {"rl.clip_high", T::kDouble, "0", "upper clip range (clip-higher; 0 = rl.clip_eps)"},
      {"rl.dual_clip", T::kDouble, "0", "dual-clip constant c > 1 for negative advantages (0 = off)"},
      {"rl.ratio", T::kString, "token", "importance ratio per token, or per sequence (GSPO)"},
      {"rl.loss_agg", T::kString, "token-mean",
       "loss aggregation: token-mean, seq-mean-token-mean or seq-mean-token-sum-norm"},
      {"rl.tis_cap", T::kDouble, "0",
       "truncated importance sampling cap for rollout/learner mismatch (0 = off)"},
      {"rl.kl_coef", T::kDouble, "0", "KL-to-reference coefficient in the loss (0 = off)"},
      {"rl.kl_estimator", T::kString, "k3", "per-token KL estimator: k1, k2 or k3"},
      {"rl.entropy_coef", T::kDouble, "0", "entropy bonus coefficient"},
      {"rl.nll_coef", T::kDouble, "0", "NLL coefficient on positive examples (reward > 0)"},
      {"rl.aux_loss_coef", T::kDouble, "0.01", "MoE load-balancing loss coefficient"},
      {"rl.router_z_loss_coef", T::kDouble, "0", "MoE router z-loss coefficient"},
      {"rl.temperature", T::kDouble, "1.0", "sampling temperature"},
      {"rl.top_p", T::kDouble, "1.0", "nucleus sampling mass"},
      {"rl.max_new_tokens", T::kInt, "48", "generation budget per sample"},
      {"rl.advantage", T::kString, "grpo",
       "advantage estimator: grpo, dr_grpo, rloo, reinforce_pp or reinforce_pp_baseline"},
      {"run.checkpoint_every", T::kInt, "0",
       "save a trainer checkpoint every N RL steps into runs/<name>/checkpoints (0 = off)"},
      {"run.keep_checkpoints", T::kInt, "3", "periodic checkpoints kept (the newest N)"},
      {"run.resume", T::kBool, "false",
       "continue the run from runs/<name>/checkpoints (learner state and data cursor)"},
      {"run.restart_limit", T::kInt, "3",
       "rlpost train: times a crashed verifier, rollout worker or controller is started again"},
      {"run.lineage_file_mb", T::kInt, "64",
       "rotate the sample records (runs/<name>/samples/*.jsonl) after this many MiB"},
      {"rl.gae_gamma", T::kDouble, "1.0", "gae: discount"},
      {"rl.gae_lambda", T::kDouble, "0.95", "gae: lambda of the policy advantages"},
      {"rl.gae_lambda_critic", T::kDouble, "1.0",
       "gae: lambda of the value targets (VAPO decouples it from rl.gae_lambda)"},
      {"rl.gae_length_adaptive_alpha", T::kDouble, "0",
       "gae: VAPO length-adaptive policy lambda 1 - 1/(alpha * length); 0 = off"},
      {"rl.whiten_advantages", T::kBool, "true", "gae: whiten advantages over the batch"},
      {"rl.value_clip", T::kDouble, "0.2", "gae: clip of the value loss (0 = unclipped)"},
      {"rl.critic_lr", T::kDouble, "0", "gae: critic learning rate (0 = rl.lr)"},
      {"rl.value_warmup_steps", T::kInt, "0",
       "gae: first RL steps that train only the critic (VAPO value pre-training)"},
      {"rl.kl_reward_coef", T::kDouble, "0",
       "gae: per-token KL-to-reference penalty in the reward (0 = off)"},
      {"rl.objective", T::kString, "pg",
       "pg (policy gradient) or rft (SFT on accepted samples: rejection-sampling fine-tuning)"},
      {"rl.rft_select", T::kString, "best_of_n", "rft: best_of_n or shortest_correct per group"},
      {"rl.drop_truncated", T::kBool, "false",
       "leave samples that hit rl.max_new_tokens out of the loss (overlong filtering)"},
      {"rl.require_format", T::kBool, "false",
       "leave samples without one well-formed \\boxed{} answer out of the loss"},
      {"rl.router_replay", T::kBool, "false",
       "train with the experts the rollout routed each response token to"},
      {"rl.group_deadline_ms", T::kInt, "0",
       "straggler deadline of one group's generation (0 = none)"},
      {"rl.oversample_groups", T::kInt, "0",
       "extra groups generated per step; once rl.prompts_per_step groups are done the slowest "
       "are cancelled (long-tail cut)"},
      {"rl.partial_rollout_tokens", T::kInt, "0",
       "partial rollouts: tokens a sample may generate per step before it is cut and continued "
       "in the next step (0 = off)"},
      {"rl.partial_rollout_max_carries", T::kInt, "2",
       "partial rollouts: steps a group may be carried before it must finish"},
      {"rl.mode", T::kString, "sync",
       "sync (generate, then train on it) or async (generate the next steps while training)"},
      {"rl.max_staleness", T::kInt, "0",
       "async: weight versions a trained sample may lag the learner (0 = 1 in async; sync: 0)"},
      {"rl.straggler_policy", T::kString, "resample",
       "late group members: resample (once, new seed) or drop (the whole group)"},
      {"rl.dynamic_sampling_rounds", T::kInt, "0",
       "extra generate rounds that refill the batch after uniform groups are dropped (0 = off)"},
      {"rl.skip_uniform_groups", T::kBool, "true",
       "rejection sampling: drop groups whose rewards are all equal"},
      {"reward.correct", T::kDouble, "1.0", "reward for a verified correct answer"},
      {"reward.format", T::kDouble, "0.0",
       "weight of the format part: 1 for a well-formed \\boxed{} answer (and reasoning closed "
       "by </think> with reward.format_think)"},
      {"reward.format_think", T::kBool, "false",
       "the format part also needs reasoning closed by one </think> before the answer"},
      {"reward.overlong", T::kDouble, "0.0",
       "weight of DAPO's soft overlong punishment (0 to -1 over the last buffer tokens)"},
      {"reward.overlong_max_tokens", T::kInt, "0",
       "overlong: the length punished with -1 (0 = rl.max_new_tokens)"},
      {"reward.overlong_buffer_tokens", T::kInt, "0",
       "overlong: the band below the maximum where the punishment grows (0 = a fifth of it)"},
      {"reward.length", T::kDouble, "0.0",
       "weight of Kimi k1.5's group-relative length reward (shorter correct answers earn more)"},
      {"reward.repetition", T::kDouble, "0.0",
       "weight of the repetition penalty (minus the share of repeated token n-grams)"},
      {"reward.repetition_ngram", T::kInt, "4", "repetition penalty: n-gram length in tokens"},
      {"reward.plugins.*.path", T::kString, "",
       "a reward plugin's shared library (a bare file name is looked up in the lib folders "
       "beside the binaries)"},
      {"reward.plugins.*.function", T::kString, "",
       "the plugin's reward function (empty: its first one)"},
      {"reward.plugins.*.weight", T::kDouble, "1.0", "the plugin part's weight"},
      {"reward.plugins.*.config", T::kString, "", "bytes passed to the plugin's config_new"},
      {"reward.plugins.*.memory_mb", T::kInt, "2048",
       "the plugin host's data memory limit (RLIMIT_DATA) in MiB; 0 = none"},
      {"reward.plugins.*.deadline_ms", T::kInt, "10000",
       "per-batch deadline; past it the plugin's samples fail and its host is restarted"},
      {"reward.host_binary", T::kString, "",
       "the plugin host executable (empty: rlpost-reward-host beside the controller)"},
      {"eval.temperature", T::kDouble, "0.0", "held-out evaluation temperature (0 = greedy)"},
      {"eval.size", T::kInt, "200", "held-out problems evaluated"},
      {"optim.weight_decay", T::kDouble, "0.0", "AdamW weight decay"},
      {"optim.grad_clip", T::kDouble, "1.0", "global gradient-norm clip (0 = off)"},
      {"rollout.workers", T::kInt, "2", "rollout worker processes"},
      {"rollout.threads", T::kInt, "1", "intra-op threads per rollout worker"},
      {"rollout.cpus", T::kString, "",
       "launcher: CPUs the rollout workers are pinned to, e.g. 0-3,6 (empty = any)"},
      {"rollout.drafter", T::kString, "none",
       "speculative decoding drafter: none, ngram, mtp (needs model.mtp_layers=1) or draft"},
      {"rollout.max_draft_tokens", T::kInt, "4", "largest draft length per step (0..16)"},
      {"rollout.adaptive", T::kBool, "true",
       "pick the draft length per step from measured acceptance and cost"},
      {"rollout.device", T::kString, "cpu",
       "where a rollout worker runs the policy: cpu, cuda (CUDA device 0) or cuda:N"},
      {"rollout.max_batch", T::kInt, "64", "samples decoded together per worker"},
      {"rollout.kv_block_size", T::kInt, "16", "tokens per paged KV block"},
      {"rollout.kv_blocks", T::kInt, "0",
       "KV blocks per worker (0 = max_batch full-context samples)"},
      {"learner.world_size", T::kInt, "1", "learner ranks (torch c10d)"},
      {"learner.device", T::kString, "cpu",
       "where each learner rank trains: cpu, cuda (CUDA device $LOCAL_RANK, default 0) or cuda:N"},
      {"learner.backend", T::kString, "auto",
       "gradient all-reduce: auto (nccl on cuda, gloo on cpu), gloo or nccl"},
      {"learner.threads", T::kInt, "1", "intra-op threads per learner rank"},
      {"learner.cpus", T::kString, "",
       "launcher: CPUs the learner ranks are pinned to, e.g. 1 (empty = any)"},
      {"verifier.cpus", T::kString, "",
       "launcher: CPUs the verifier (and its sandboxes) is pinned to (empty = any)"},
      {"run.controller_cpus", T::kString, "",
       "launcher: CPUs the controller is pinned to (empty = any)"},
      {"learner.activation_checkpointing", T::kBool, "false",
       "recompute each decoder block's activations in backward (less memory, ~1 extra forward)"},
      {"learner.dtype", T::kString, "float32",
       "training precision: float32, or bfloat16 (mixed: bf16 matmuls, fp32 master weights)"},
      {"learner.retained_versions", T::kInt, "3",
       "weight versions rank 0 keeps in memory for GetWeights (the newest N)"},
      {"learner.publish_dtype", T::kString, "float32",
       "dtype of weight updates on the wire to rollout workers: float32 or bfloat16"},
      {"learner.micro_batch_tokens", T::kInt, "4096",
       "tokens per packed micro-batch (gradients accumulate over them)"},
      {"learner.rendezvous_timeout_s", T::kInt, "120",
       "seconds for every learner rank to join the group"},
      {"verifier.deadline_ms", T::kInt, "5000", "deadline of one verify batch"},
      {"net.rpc_timeout_ms", T::kInt, "120000", "deadline of one RPC"},
      {"net.connect_retries", T::kInt, "8", "attempts to reach a process"},
      {"net.connect_backoff_ms", T::kInt, "100", "first retry delay (doubles)"},
      {"net.heartbeat_ms", T::kInt, "2000",
       "how often a registered worker tells the controller it is alive"},
      {"net.heartbeat_timeout_ms", T::kInt, "10000",
       "a registered rollout worker silent this long leaves service before the next step"},
  };
}

absl::Status Positive(const Config& c, const std::string& key) {
  if (c.GetInt(key) <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("config key '", key, "' must be positive, got ", c.GetInt(key)));
  }
  return absl::OkStatus();
}

}  // namespace

std::string DeviceSettingName(const std::string& key) {
  return key.rfind("--", 0) == 0 ? key : absl::StrCat("config key '", key, "'");
}

absl::Status CheckDeviceSpec(const std::string& key, const std::string& value) {
  if (value == "cpu" || value == "cuda") return absl::OkStatus();
  const std::string index = absl::StartsWith(value, "cuda:") ? value.substr(5) : "";
  if (!index.empty() && index.size() <= 4 &&
      index.find_first_not_of("0123456789") == std::string::npos) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      DeviceSettingName(key), " must be cpu, cuda or cuda:N (N a device index), got '", value, "'"));
}

const ConfigSchema& RunConfigSchema() {
  static const ConfigSchema* schema = new ConfigSchema(Keys());
  return *schema;
}

absl::StatusOr<RunConfig> ParseRunConfig(const Config& c) {
  for (const char* key :
       {"model.n_layers", "model.d_model", "model.n_heads", "model.n_kv_heads",
        "model.n_experts", "model.top_k", "model.expert_hidden", "model.max_seq_len",
        "sft.batch_size", "rl.prompts_per_step", "rl.group_size", "rl.max_new_tokens",
        "rollout.workers", "rollout.threads", "rollout.max_batch", "rollout.kv_block_size",
        "learner.world_size", "learner.threads", "learner.micro_batch_tokens",
        "learner.retained_versions", "run.lineage_file_mb", "run.keep_checkpoints",
        "verifier.deadline_ms", "net.rpc_timeout_ms", "net.connect_retries",
        "net.heartbeat_ms", "net.heartbeat_timeout_ms"}) {
    absl::Status s = Positive(c, key);
    if (!s.ok()) return s;
  }
  RunConfig r;
  r.name = c.GetString("run.name");
  if (r.name.empty() || r.name.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        "config key 'run.name' must be a non-empty name without '/'");
  }
  r.seed = static_cast<uint64_t>(c.GetInt("run.seed"));
  r.output_dir = c.GetString("run.output_dir");
  r.task_kind = c.GetString("task.kind");
  if (r.task_kind != "arith" && r.task_kind != "jsonl") {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'task.kind' must be 'arith' or 'jsonl', got '", r.task_kind, "'"));
  }
  r.task_train_path = c.GetString("task.train_path");
  r.task_heldout_path = c.GetString("task.heldout_path");
  if (r.task_kind == "jsonl" && (r.task_train_path.empty() || r.task_heldout_path.empty())) {
    return absl::InvalidArgumentError(
        "task.kind=jsonl needs both 'task.train_path' and 'task.heldout_path'");
  }
  r.task_train_size = c.GetInt("task.train_size");
  r.task_heldout_size = c.GetInt("task.heldout_size");
  r.task_max_operand = c.GetInt("task.max_operand");
  if (r.task_max_operand < 9) {
    return absl::InvalidArgumentError("config key 'task.max_operand' must be at least 9");
  }
  r.model.n_layers = c.GetInt("model.n_layers");
  r.model.d_model = c.GetInt("model.d_model");
  r.model.n_heads = c.GetInt("model.n_heads");
  r.model.n_kv_heads = c.GetInt("model.n_kv_heads");
  r.model.n_experts = c.GetInt("model.n_experts");
  r.model.top_k = c.GetInt("model.top_k");
  r.model.expert_hidden = c.GetInt("model.expert_hidden");
  r.model.max_seq_len = c.GetInt("model.max_seq_len");
  r.model.rope_theta = c.GetDouble("model.rope_theta");
  r.model.init_seed = c.GetInt("model.init_seed");
  r.model.mtp_layers = c.GetInt("model.mtp_layers");
  if (r.model.mtp_layers < 0 || r.model.mtp_layers > 1) {
    return absl::InvalidArgumentError("config key 'model.mtp_layers' must be 0 or 1");
  }
  if (r.model.d_model % r.model.n_heads != 0) {
    return absl::InvalidArgumentError("config key 'model.d_model' must be divisible by 'model.n_heads'");
  }
  if (r.model.n_heads % r.model.n_kv_heads != 0) {
    return absl::InvalidArgumentError("config key 'model.n_heads' must be divisible by 'model.n_kv_heads'");
  }
  if (r.model.top_k > r.model.n_experts) {
    return absl::InvalidArgumentError("config key 'model.top_k' must not exceed 'model.n_experts'");
  }
  r.sft_steps = c.GetInt("sft.steps");
  r.sft_batch_size = c.GetInt("sft.batch_size");
  r.sft_lr = c.GetDouble("sft.lr");
  r.rl_steps = c.GetInt("rl.steps");
  r.rl_prompts_per_step = c.GetInt("rl.prompts_per_step");
  r.rl_group_size = c.GetInt("rl.group_size");
  r.rl_lr = c.GetDouble("rl.lr");
  r.rl_clip_eps = c.GetDouble("rl.clip_eps");
  r.rl_temperature = c.GetDouble("rl.temperature");
  r.rl_top_p = c.GetDouble("rl.top_p");
  r.rl_max_new_tokens = c.GetInt("rl.max_new_tokens");
  r.rl_skip_uniform_groups = c.GetBool("rl.skip_uniform_groups");
  r.rl_dynamic_sampling_rounds = c.GetInt("rl.dynamic_sampling_rounds");
  r.rl_router_replay = c.GetBool("rl.router_replay");
  r.rl_objective = c.GetString("rl.objective");
  r.rl_rft_select = c.GetString("rl.rft_select");
  r.rl_drop_truncated = c.GetBool("rl.drop_truncated");
  r.rl_require_format = c.GetBool("rl.require_format");
  if (r.rl_objective != "pg" && r.rl_objective != "rft") {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'rl.objective' must be pg or rft, got '", r.rl_objective, "'"));
  }
  if (r.rl_rft_select != "best_of_n" && r.rl_rft_select != "shortest_correct") {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'rl.rft_select' must be best_of_n or shortest_correct, got '",
        r.rl_rft_select, "'"));
  }
  if (r.rl_dynamic_sampling_rounds < 0 || r.rl_dynamic_sampling_rounds > 16) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'rl.dynamic_sampling_rounds' must be in [0, 16], got ",
        r.rl_dynamic_sampling_rounds));
  }
  r.rl_advantage = c.GetString("rl.advantage");
  r.rl_clip_high = c.GetDouble("rl.clip_high");
  r.rl_lr_warmup_steps = c.GetInt("rl.lr_warmup_steps");
  r.rl_lr_schedule = c.GetString("rl.lr_schedule");
  r.rl_lr_min_ratio = c.GetDouble("rl.lr_min_ratio");
  if (r.rl_lr_schedule != "constant" && r.rl_lr_schedule != "cosine") {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'rl.lr_schedule' must be constant or cosine, got '", r.rl_lr_schedule, "'"));
  }
  if (r.rl_lr_warmup_steps < 0 || r.rl_lr_min_ratio < 0 || r.rl_lr_min_ratio > 1) {
    return absl::InvalidArgumentError(
        "config keys 'rl.lr_warmup_steps' must be >= 0 and 'rl.lr_min_ratio' in [0, 1]");
  }
  r.rl_dual_clip = c.GetDouble("rl.dual_clip");
  r.rl_ratio = c.GetString("rl.ratio");
  r.rl_loss_agg = c.GetString("rl.loss_agg");
  r.rl_tis_cap = c.GetDouble("rl.tis_cap");
  r.rl_kl_coef = c.GetDouble("rl.kl_coef");
  r.rl_kl_estimator = c.GetString("rl.kl_estimator");
  r.rl_entropy_coef = c.GetDouble("rl.entropy_coef");
  r.rl_aux_loss_coef = c.GetDouble("rl.aux_loss_coef");
  r.rl_router_z_loss_coef = c.GetDouble("rl.router_z_loss_coef");
  r.rl_nll_coef = c.GetDouble("rl.nll_coef");
  if (r.rl_ratio != "token" && r.rl_ratio != "sequence") {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'rl.ratio' must be token or sequence, got '", r.rl_ratio, "'"));
  }
  if (r.rl_loss_agg != "token-mean" && r.rl_loss_agg != "seq-mean-token-mean" &&
      r.rl_loss_agg != "seq-mean-token-sum-norm") {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'rl.loss_agg' must be token-mean, seq-mean-token-mean or "
        "seq-mean-token-sum-norm, got '", r.rl_loss_agg, "'"));
  }
  if (r.rl_kl_estimator != "k1" && r.rl_kl_estimator != "k2" && r.rl_kl_estimator != "k3") {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'rl.kl_estimator' must be k1, k2 or k3, got '", r.rl_kl_estimator, "'"));
  }
  if (r.rl_dual_clip != 0 && r.rl_dual_clip <= 1) {
    return absl::InvalidArgumentError(
        "config key 'rl.dual_clip' must be 0 (off) or greater than 1");
  }
  for (const char* key : {"rl.clip_eps", "rl.clip_high", "rl.tis_cap", "rl.kl_coef",
                          "rl.entropy_coef", "rl.nll_coef", "rl.aux_loss_coef",
                          "rl.router_z_loss_coef"}) {
    if (c.GetDouble(key) < 0) {
      return absl::InvalidArgumentError(absl::StrCat("config key '", key, "' must not be negative"));
    }
  }
  if (r.rl_advantage != "grpo" && r.rl_advantage != "dr_grpo" && r.rl_advantage != "rloo" &&
      r.rl_advantage != "reinforce_pp" && r.rl_advantage != "reinforce_pp_baseline" &&
      r.rl_advantage != "gae") {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'rl.advantage' must be grpo, dr_grpo, rloo, reinforce_pp, "
        "reinforce_pp_baseline or gae, got '", r.rl_advantage, "'"));
  }
  r.run_lineage_file_mb = c.GetInt("run.lineage_file_mb");
  r.run_restart_limit = c.GetInt("run.restart_limit");
  if (r.run_restart_limit < 0) {
    return absl::InvalidArgumentError("config key 'run.restart_limit' must not be negative");
  }
  r.rl_group_deadline_ms = c.GetInt("rl.group_deadline_ms");
  if (r.rl_group_deadline_ms < 0) {
    return absl::InvalidArgumentError("config key 'rl.group_deadline_ms' must not be negative");
  }
  r.rl_straggler_policy = c.GetString("rl.straggler_policy");
  if (r.rl_straggler_policy != "resample" && r.rl_straggler_policy != "drop") {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'rl.straggler_policy' must be resample or drop, got '",
        r.rl_straggler_policy, "'"));
  }
  r.heartbeat_ms = c.GetInt("net.heartbeat_ms");
  r.heartbeat_timeout_ms = c.GetInt("net.heartbeat_timeout_ms");
  if (r.heartbeat_timeout_ms <= r.heartbeat_ms) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'net.heartbeat_timeout_ms' (", r.heartbeat_timeout_ms,
        ") must exceed net.heartbeat_ms (", r.heartbeat_ms, ")"));
  }
  r.rl_oversample_groups = c.GetInt("rl.oversample_groups");
  if (r.rl_oversample_groups < 0) {
    return absl::InvalidArgumentError("config key 'rl.oversample_groups' must not be negative");
  }
  r.rl_partial_rollout_tokens = c.GetInt("rl.partial_rollout_tokens");
  r.rl_partial_rollout_max_carries = c.GetInt("rl.partial_rollout_max_carries");
  if (r.rl_partial_rollout_tokens < 0) {
    return absl::InvalidArgumentError(
        "config key 'rl.partial_rollout_tokens' must not be negative (0 turns it off)");
  }
  if (r.rl_partial_rollout_max_carries < 1 || r.rl_partial_rollout_max_carries > 16) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'rl.partial_rollout_max_carries' must be in [1, 16], got ",
        r.rl_partial_rollout_max_carries));
  }
  r.rl_mode = c.GetString("rl.mode");
  if (r.rl_mode != "sync" && r.rl_mode != "async") {
    return absl::InvalidArgumentError(
        absl::StrCat("config key 'rl.mode' must be sync or async, got '", r.rl_mode, "'"));
  }
  r.rl_max_staleness = c.GetInt("rl.max_staleness");
  if (r.rl_max_staleness < 0 || r.rl_max_staleness > 16) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'rl.max_staleness' must be in [0, 16], got ", r.rl_max_staleness));
  }
  if (r.rl_mode == "sync" && r.rl_max_staleness > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'rl.max_staleness' (", r.rl_max_staleness,
        ") bounds async mode only, but rl.mode is sync: set rl.mode=async or drop "
        "rl.max_staleness"));
  }
  if (r.rl_mode == "async" && r.rl_max_staleness == 0) r.rl_max_staleness = 1;
  if (r.rl_mode == "async" && c.GetInt("learner.retained_versions") < r.rl_max_staleness + 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'learner.retained_versions' (", c.GetInt("learner.retained_versions"),
        ") must be at least rl.max_staleness + 1 (", r.rl_max_staleness + 1,
        "): async rollouts fetch weights that many versions old"));
  }
  r.run_checkpoint_every = c.GetInt("run.checkpoint_every");
  if (r.run_checkpoint_every < 0) {
    return absl::InvalidArgumentError("config key 'run.checkpoint_every' must not be negative");
  }
  r.run_keep_checkpoints = c.GetInt("run.keep_checkpoints");
  r.run_resume = c.GetBool("run.resume");
  r.rl_gae_gamma = c.GetDouble("rl.gae_gamma");
  r.rl_gae_lambda = c.GetDouble("rl.gae_lambda");
  r.rl_gae_lambda_critic = c.GetDouble("rl.gae_lambda_critic");
  for (const char* key : {"rl.gae_gamma", "rl.gae_lambda", "rl.gae_lambda_critic"}) {
    if (!(c.GetDouble(key) >= 0 && c.GetDouble(key) <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat("config key '", key, "' must be in [0, 1]"));
    }
  }
  r.rl_gae_length_adaptive_alpha = c.GetDouble("rl.gae_length_adaptive_alpha");
  r.rl_whiten_advantages = c.GetBool("rl.whiten_advantages");
  r.rl_value_clip = c.GetDouble("rl.value_clip");
  r.rl_critic_lr = c.GetDouble("rl.critic_lr");
  r.rl_value_warmup_steps = c.GetInt("rl.value_warmup_steps");
  r.rl_kl_reward_coef = c.GetDouble("rl.kl_reward_coef");
  for (const char* key : {"rl.gae_length_adaptive_alpha", "rl.value_clip", "rl.critic_lr",
                          "rl.kl_reward_coef"}) {
    if (!(c.GetDouble(key) >= 0)) {
      return absl::InvalidArgumentError(absl::StrCat("config key '", key, "' must not be negative"));
    }
  }
  if (r.rl_value_warmup_steps < 0) {
    return absl::InvalidArgumentError("config key 'rl.value_warmup_steps' must not be negative");
  }
  if (r.rl_advantage != "gae" && (r.rl_value_warmup_steps != 0 || r.rl_kl_reward_coef != 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key '", r.rl_value_warmup_steps != 0 ? "rl.value_warmup_steps" : "rl.kl_reward_coef",
        "' needs a critic: set rl.advantage=gae (outcome estimators take the KL in the loss "
        "through rl.kl_coef)"));
  }
  r.reward_correct = c.GetDouble("reward.correct");
  r.reward_format = c.GetDouble("reward.format");
  r.reward_format_think = c.GetBool("reward.format_think");
  r.reward_overlong = c.GetDouble("reward.overlong");
  r.reward_overlong_max_tokens = c.GetInt("reward.overlong_max_tokens");
  r.reward_overlong_buffer_tokens = c.GetInt("reward.overlong_buffer_tokens");
  r.reward_length = c.GetDouble("reward.length");
  r.reward_repetition = c.GetDouble("reward.repetition");
  r.reward_repetition_ngram = c.GetInt("reward.repetition_ngram");
  r.reward_host_binary = c.GetString("reward.host_binary");
  if (r.reward_overlong_max_tokens < 0 || r.reward_overlong_buffer_tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key '",
        r.reward_overlong_max_tokens < 0 ? "reward.overlong_max_tokens" : "reward.overlong_buffer_tokens",
        "' must not be negative"));
  }
  if (r.reward_overlong_max_tokens == 0) r.reward_overlong_max_tokens = r.rl_max_new_tokens;
  if (r.reward_overlong_buffer_tokens == 0) {
    r.reward_overlong_buffer_tokens = r.reward_overlong_max_tokens / 5;
  }
  if (r.reward_overlong_buffer_tokens > r.reward_overlong_max_tokens) {
    return absl::InvalidArgumentError(
        "config key 'reward.overlong_buffer_tokens' must not exceed reward.overlong_max_tokens");
  }
  if (r.reward_repetition_ngram < 1 || r.reward_repetition_ngram > 64) {
    return absl::InvalidArgumentError("config key 'reward.repetition_ngram' must be in [1, 64]");
  }
  for (const std::string& id : c.Instances("reward.plugins")) {
    const std::string key = "reward.plugins." + id;
    RewardPluginConfig p;
    p.id = id;
    p.path = c.GetString(key + ".path");
    p.function = c.GetString(key + ".function");
    p.weight = c.GetDouble(key + ".weight");
    p.config = c.GetString(key + ".config");
    p.deadline_ms = c.GetInt(key + ".deadline_ms");
    p.memory_mb = c.GetInt(key + ".memory_mb");
    if (p.memory_mb < 0 || (p.memory_mb > 0 && p.memory_mb < 64)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config key '", key, ".memory_mb' must be 0 (no limit) or at least 64, got ",
          p.memory_mb));
    }
    if (p.path.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config key '", key, ".path' is required: the plugin's shared library (.so)"));
    }
    if (p.deadline_ms <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("config key '", key, ".deadline_ms' must be positive"));
    }
    if (!std::isfinite(p.weight)) {
      return absl::InvalidArgumentError(
          absl::StrCat("config key '", key, ".weight' must be a finite number"));
    }
    r.reward_plugins.push_back(std::move(p));
  }
  r.eval_temperature = c.GetDouble("eval.temperature");
  r.eval_size = c.GetInt("eval.size");
  r.weight_decay = c.GetDouble("optim.weight_decay");
  r.grad_clip = c.GetDouble("optim.grad_clip");
  r.rollout_workers = c.GetInt("rollout.workers");
  r.rollout_threads = c.GetInt("rollout.threads");
  for (const auto& [key, field] : {std::pair<const char*, std::vector<int>*>{
                                        "rollout.cpus", &r.rollout_cpus},
                                    {"learner.cpus", &r.learner_cpus},
                                    {"verifier.cpus", &r.verifier_cpus},
                                    {"run.controller_cpus", &r.controller_cpus}}) {
    absl::StatusOr<std::vector<int>> cpus = ParseCpuList(c.GetString(key));
    if (!cpus.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("config key '", key, "': ", cpus.status().message()));
    }
    *field = *std::move(cpus);
  }
  r.learner_rendezvous_timeout_s = c.GetInt("learner.rendezvous_timeout_s");
  if (r.learner_rendezvous_timeout_s < 1) {
    return absl::InvalidArgumentError("config key 'learner.rendezvous_timeout_s' must be positive");
  }
  r.rollout_drafter = c.GetString("rollout.drafter");
  if (r.rollout_drafter != "none" && r.rollout_drafter != "ngram" && r.rollout_drafter != "mtp" &&
      r.rollout_drafter != "draft") {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'rollout.drafter' must be none, ngram, mtp or draft, got '",
        r.rollout_drafter, "'"));
  }
  if (r.rollout_drafter == "mtp" && r.model.mtp_layers != 1) {
    return absl::InvalidArgumentError(
        "config key 'rollout.drafter' is mtp but the policy has no MTP block: set "
        "model.mtp_layers=1");
  }
  r.rollout_device = c.GetString("rollout.device");
  r.learner_device = c.GetString("learner.device");
  for (const auto& [key, value] : {std::pair<const char*, const std::string*>{"rollout.device", &r.rollout_device},
                                   {"learner.device", &r.learner_device}}) {
    absl::Status s = CheckDeviceSpec(key, *value);
    if (!s.ok()) return s;
  }
  r.learner_backend = c.GetString("learner.backend");
  if (r.learner_backend != "auto" && r.learner_backend != "gloo" && r.learner_backend != "nccl") {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'learner.backend' must be auto, gloo or nccl, got '", r.learner_backend, "'"));
  }
  if (r.learner_backend == "nccl" && r.learner_device == "cpu") {
    return absl::InvalidArgumentError(
        "config key 'learner.backend' is nccl but learner.device is cpu: NCCL reduces CUDA "
        "tensors only; set learner.device=cuda or learner.backend=gloo");
  }
  r.rollout_max_draft_tokens = c.GetInt("rollout.max_draft_tokens");
  if (r.rollout_max_draft_tokens < 0 || r.rollout_max_draft_tokens > 16) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'rollout.max_draft_tokens' must be in [0, 16], got ",
        r.rollout_max_draft_tokens));
  }
  r.rollout_adaptive = c.GetBool("rollout.adaptive");
  r.rollout_max_batch = c.GetInt("rollout.max_batch");
  r.rollout_kv_block_size = c.GetInt("rollout.kv_block_size");
  r.rollout_kv_blocks = c.GetInt("rollout.kv_blocks");
  if (r.rollout_kv_blocks < 0) {
    return absl::InvalidArgumentError("config key 'rollout.kv_blocks' must be >= 0");
  }
  r.learner_world_size = c.GetInt("learner.world_size");
  r.learner_threads = c.GetInt("learner.threads");
  r.learner_micro_batch_tokens = c.GetInt("learner.micro_batch_tokens");
  r.learner_activation_checkpointing = c.GetBool("learner.activation_checkpointing");
  r.learner_retained_versions = c.GetInt("learner.retained_versions");
  r.learner_dtype = c.GetString("learner.dtype");
  if (r.learner_dtype != "float32" && r.learner_dtype != "bfloat16") {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'learner.dtype' must be float32 or bfloat16, got '", r.learner_dtype, "'"));
  }
  r.learner_publish_dtype = c.GetString("learner.publish_dtype");
  if (r.learner_publish_dtype != "float32" && r.learner_publish_dtype != "bfloat16") {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'learner.publish_dtype' must be float32 or bfloat16, got '",
        r.learner_publish_dtype, "'"));
  }
  r.verifier_deadline_ms = c.GetInt("verifier.deadline_ms");
  r.rpc_timeout_ms = c.GetInt("net.rpc_timeout_ms");
  r.connect_retries = c.GetInt("net.connect_retries");
  r.connect_backoff_ms = c.GetInt("net.connect_backoff_ms");
  if (r.rl_steps < 0 || r.sft_steps < 0) {
    return absl::InvalidArgumentError("config keys 'rl.steps' and 'sft.steps' must not be negative");
  }
  if (r.rl_temperature < 0 || r.eval_temperature < 0) {
    return absl::InvalidArgumentError("sampling temperatures must not be negative");
  }
  return r;
}

absl::StatusOr<RunConfig> LoadRunConfig(const std::string& path,
                                        const std::vector<std::string>& overrides) {
  absl::StatusOr<Config> c = Config::Load(RunConfigSchema(), path, overrides);
  if (!c.ok()) return c.status();
  return ParseRunConfig(*c);
}

absl::StatusOr<std::vector<int>> ParseCpuList(const std::string& text) {
  std::vector<int> cpus;
  if (text.empty()) return cpus;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    std::vector<std::string> ends = absl::StrSplit(part, absl::MaxSplits('-', 1));
    int lo = 0, hi = 0;
    if (!absl::SimpleAtoi(ends[0], &lo) ||
        !absl::SimpleAtoi(ends.size() > 1 ? ends[1] : ends[0], &hi) || lo < 0 || hi < lo ||
        hi > 1023) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", text, "' is not a CPU list: give CPU numbers and ranges such as 0-3,6"));
    }
    for (int cpu = lo; cpu <= hi; ++cpu) {
      if (std::find(cpus.begin(), cpus.end(), cpu) == cpus.end()) cpus.push_back(cpu);
    }
  }
  std::sort(cpus.begin(), cpus.end());
  return cpus;
}

}  // namespace rlpost
