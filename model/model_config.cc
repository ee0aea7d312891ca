#include "model/model_config.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace rlpost {
namespace {

using nlohmann::json;

// Reads optional typed fields of a config.json object, remembering the first
// type error so that parsing reads straight through.
class FieldReader {
 public:
  explicit FieldReader(const json& j) : j_(j) {}

  bool Has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }

  void Int(const char* key, int64_t* out, bool required = false) {
    if (!Has(key)) {
      if (required) Fail(key, "is required");
      return;
    }
    const json& v = j_.at(key);
    if (!v.is_number_integer()) return Fail(key, "must be an integer");
    *out = v.get<int64_t>();
  }
  void Double(const char* key, double* out) {
    if (!Has(key)) return;
    const json& v = j_.at(key);
    if (!v.is_number()) return Fail(key, "must be a number");
    *out = v.get<double>();
  }
  void Bool(const char* key, bool* out) {
    if (!Has(key)) return;
    const json& v = j_.at(key);
    if (!v.is_boolean()) return Fail(key, "must be true or false");
    *out = v.get<bool>();
  }
  void IntList(const char* key, std::vector<int64_t>* out) {
    if (!Has(key)) return;
    const json& v = j_.at(key);
    if (!v.is_array()) return Fail(key, "must be a list of integers");
    out->clear();
    for (const json& e : v) {
      if (!e.is_number_integer()) return Fail(key, "must be a list of integers");
      out->push_back(e.get<int64_t>());
    }
  }
  void Fail(const char* key, const std::string& what) {
    if (status_.ok()) {
      status_ = absl::InvalidArgumentError(absl::StrCat("config.json: field '", key, "' ", what));
    }
  }
  const absl::Status& status() const { return status_; }

 private:
  const json& j_;
  absl::Status status_;
};

// Keys ParseConfigJson interprets; everything else is passed through.
const char* const kInterpretedKeys[] = {
    "model_type", "architectures", "vocab_size", "hidden_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings",
    "rope_theta", "rope_scaling", "rms_norm_eps", "tie_word_embeddings", "attention_bias",
    "qk_norm", "intermediate_size", "moe_intermediate_size", "num_experts",
    "num_local_experts", "num_experts_per_tok", "norm_topk_prob", "decoder_sparse_step",
    "mlp_only_layers", "first_k_dense_replace", "shared_expert_intermediate_size",
    "shared_expert_gate", "router_aux_loss_coef", "num_nextn_predict_layers", "torch_dtype",
    "sliding_window", "use_sliding_window", "clip_qkv", "hidden_act", "rlpost_init_seed",
    "rope_parameters", "qkv_bias", "dtype"};

const char* ArchitectureName(const std::string& model_type) {
  if (model_type == "qwen3_moe") return "Qwen3MoeForCausalLM";
  if (model_type == "qwen2_moe") return "Qwen2MoeForCausalLM";
  if (model_type == "mixtral") return "MixtralForCausalLM";
  if (model_type == "olmoe") return "OlmoeForCausalLM";
  return "RlpostMoeForCausalLM";
}

const char* QkNormName(QkNorm q) {
  switch (q) {
    case QkNorm::kNone: return "none";
    case QkNorm::kPerHead: return "per_head";
    case QkNorm::kFull: return "full";
  }
  return "none";
}

// Hugging Face's defaults for each family (the config classes' __init__).
ModelConfig DefaultsFor(const std::string& type) {
  ModelConfig c;
  c.model_type = type;
  c.passthrough_json = "{}";
  c.mlp_only_layers.clear();
  c.first_k_dense = 0;
  c.decoder_sparse_step = 1;
  c.shared_expert_hidden = 0;
  c.shared_expert_gate = false;
  c.qkv_bias = false;
  c.o_bias = false;
  c.tie_word_embeddings = false;
  c.mtp_layers = 0;
  if (type == "qwen3_moe") {
    c.qk_norm = QkNorm::kPerHead;
    c.rope_theta = 10000.0;
    c.rms_eps = 1e-6;
    c.norm_topk_prob = false;
    c.max_seq_len = 32768;
    c.router_aux_loss_coef = 0.001;
    c.n_kv_heads = 4;
  } else if (type == "qwen2_moe") {
    c.qk_norm = QkNorm::kNone;
    c.qkv_bias = true;
    c.rope_theta = 10000.0;
    c.rms_eps = 1e-6;
    c.norm_topk_prob = false;
    c.shared_expert_gate = true;
    c.shared_expert_hidden = 5632;
    c.max_seq_len = 32768;
    c.router_aux_loss_coef = 0.001;
    c.n_kv_heads = 16;
  } else if (type == "mixtral") {
    c.qk_norm = QkNorm::kNone;
    c.rope_theta = 1e6;
    c.rms_eps = 1e-5;
    c.norm_topk_prob = true;
    c.max_seq_len = 4096 * 32;
    c.router_aux_loss_coef = 0.001;
    c.n_kv_heads = 8;
  } else if (type == "olmoe") {
    c.qk_norm = QkNorm::kFull;
    c.rope_theta = 10000.0;
    c.rms_eps = 1e-5;
    c.norm_topk_prob = false;
    c.max_seq_len = 4096;
    c.router_aux_loss_coef = 0.01;
  } else {  // rlpost_moe
    c.qk_norm = QkNorm::kNone;
    c.norm_topk_prob = true;
  }
  return c;
}

}  // namespace

const std::vector<std::string>& SupportedModelTypes() {
  static const std::vector<std::string> kTypes = {"qwen3_moe", "qwen2_moe", "mixtral", "olmoe",
                                                  "rlpost_moe"};
  return kTypes;
}

ModelConfig ModelConfig::FromShape(const ModelShape& shape, int64_t vocab_size) {
  ModelConfig c;
  c.vocab_size = vocab_size;
  c.n_layers = shape.n_layers;
  c.d_model = shape.d_model;
  c.n_heads = shape.n_heads;
  c.n_kv_heads = shape.n_kv_heads;
  c.n_experts = shape.n_experts;
  c.top_k = shape.top_k;
  c.expert_hidden = shape.expert_hidden;
  c.intermediate_size = 2 * shape.expert_hidden;
  c.max_seq_len = shape.max_seq_len;
  c.rope_theta = shape.rope_theta;
  c.init_seed = static_cast<uint64_t>(shape.init_seed);
  c.mtp_layers = shape.mtp_layers;
  return c;
}

bool ModelConfig::IsMoeLayer(int64_t layer) const {
  if (n_experts <= 0 || layer < first_k_dense) return false;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) {
    return false;
  }
  return decoder_sparse_step > 0 && (layer + 1) % decoder_sparse_step == 0;
}

absl::Status ModelConfig::Validate() const {
  auto bad = [](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("model config: ", what));
  };
  // Upper bounds keep a corrupt config from asking for absurd allocations.
  auto in_range = [](int64_t v, int64_t hi) { return v > 0 && v <= hi; };
  if (!in_range(vocab_size, int64_t{1} << 24)) return bad("vocab_size must be in 1..2^24");
  if (!in_range(n_layers, 1024)) return bad("num_hidden_layers must be in 1..1024");
  if (!in_range(d_model, 1 << 16)) return bad("hidden_size must be in 1..65536");
  if (!in_range(n_heads, 1024) || !in_range(n_kv_heads, 1024)) {
    return bad("attention head counts must be in 1..1024");
  }
  if (explicit_head_dim < 0 || explicit_head_dim > 4096) return bad("head_dim must be in 0..4096");
  if (n_experts > 4096) return bad("num_experts must be at most 4096");
  if (expert_hidden > (1 << 20) || intermediate_size > (1 << 20) ||
      shared_expert_hidden > (1 << 20) || shared_expert_hidden < 0) {
    return bad("intermediate sizes must be in 0..2^20");
  }
  if (n_heads % n_kv_heads != 0) {
    return bad(absl::StrCat("num_attention_heads (", n_heads,
                            ") must be a multiple of num_key_value_heads (", n_kv_heads, ")"));
  }
  if (explicit_head_dim == 0 && d_model % n_heads != 0) {
    return bad(absl::StrCat("hidden_size (", d_model, ") must be divisible by num_attention_heads (",
                            n_heads, ") or head_dim must be given"));
  }
  if (head_dim() % 2 != 0) return bad(absl::StrCat("head_dim (", head_dim(), ") must be even"));
  if (n_experts < 0) return bad("num_experts must not be negative");
  if (n_experts > 0 && (top_k <= 0 || top_k > n_experts)) {
    return bad(absl::StrCat("num_experts_per_tok (", top_k, ") must be in 1..num_experts (",
                            n_experts, ")"));
  }
  if (n_experts > 0 && expert_hidden <= 0) return bad("moe_intermediate_size must be positive");
  for (int64_t i = 0; i < n_layers; ++i) {
    if (!IsMoeLayer(i) && intermediate_size <= 0) {
      return bad(absl::StrCat("layer ", i, " is dense, so intermediate_size must be positive"));
    }
  }
  if (mtp_layers < 0 || mtp_layers > 1) {
    return bad(absl::StrCat("num_nextn_predict_layers is ", mtp_layers, "; supported: 0 or 1"));
  }
  if (max_seq_len <= 0) return bad("max_position_embeddings must be positive");
  if (decoder_sparse_step < 1 || first_k_dense < 0) {
    return bad("decoder_sparse_step must be at least 1 and first_k_dense_replace not negative");
  }
  return ValidateFamily();
}

// What each Hugging Face family can express: a combination outside it would be
// written as a config.json that transformers builds differently.
absl::Status ModelConfig::ValidateFamily() const {
  auto bad = [this](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("model config: ", model_type, " ", what,
                                                   "; use model_type rlpost_moe for it"));
  };
  if (model_type == "rlpost_moe") return absl::OkStatus();
  if (first_k_dense != 0) return bad("has no first_k_dense_replace");
  if (n_experts == 0) return bad("needs experts");
  bool all_moe = decoder_sparse_step == 1 && mlp_only_layers.empty();
  if (model_type == "qwen3_moe") {
    if (qk_norm != QkNorm::kPerHead) return bad("always has per-head q/k norm");
    if (shared_expert_hidden != 0) return bad("has no shared expert");
    if (qkv_bias != o_bias) return bad("has one attention_bias for q/k/v/o");
  } else if (model_type == "qwen2_moe") {
    if (qk_norm != QkNorm::kNone) return bad("has no q/k norm");
    if (shared_expert_hidden <= 0 || !shared_expert_gate) {
      return bad("always has a gated shared expert");
    }
    if (o_bias) return bad("has no o_proj bias");
  } else if (model_type == "mixtral") {
    if (qk_norm != QkNorm::kNone) return bad("has no q/k norm");
    if (shared_expert_hidden != 0) return bad("has no shared expert");
    if (!all_moe) return bad("has no dense layers");
    if (!norm_topk_prob) return bad("always renormalises the top-k weights");
    if (qkv_bias || o_bias) return bad("has no attention bias");
  } else if (model_type == "olmoe") {
    if (qk_norm != QkNorm::kFull) return bad("always has q/k norm over the whole projection");
    if (shared_expert_hidden != 0) return bad("has no shared expert");
    if (!all_moe) return bad("has no dense layers");
    if (qkv_bias != o_bias) return bad("has one attention_bias for q/k/v/o");
    if (d_model % n_heads != 0 || head_dim() != d_model / n_heads) {
      return bad("needs head_dim = hidden_size / num_attention_heads");
    }
  }
  return absl::OkStatus();
  return absl::OkStatus();
}

std::string ModelConfig::Describe() const {
  return absl::StrCat(model_type, " layers=", n_layers, " d=", d_model, " heads=", n_heads, "/",
                      n_kv_heads, " head_dim=", head_dim(), " experts=", n_experts, " top",
                      top_k, " expert_hidden=", expert_hidden,
                      shared_expert_hidden > 0 ? absl::StrCat(" shared=", shared_expert_hidden)
                                               : std::string(),
                      mtp_layers > 0 ? " mtp" : "", " vocab=", vocab_size, " ctx=", max_seq_len);
}

std::string ModelConfig::ToConfigJson(const std::string& torch_dtype) const {
  json j = json::parse(passthrough_json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) j = json::object();
  j["model_type"] = model_type;
  j["architectures"] = {ArchitectureName(model_type)};
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = d_model;
  j["num_hidden_layers"] = n_layers;
  j["num_attention_heads"] = n_heads;
  j["num_key_value_heads"] = n_kv_heads;
  j["head_dim"] = head_dim();
  j["max_position_embeddings"] = max_seq_len;
  j["rope_theta"] = rope_theta;
  j["rope_scaling"] = nullptr;
  j["rms_norm_eps"] = rms_eps;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["hidden_act"] = "silu";
  j["intermediate_size"] = model_type == "mixtral" ? expert_hidden : intermediate_size;
  j["num_experts_per_tok"] = top_k;
  j["router_aux_loss_coef"] = router_aux_loss_coef;
  if (model_type == "mixtral") {
    j["num_local_experts"] = n_experts;
    j["sliding_window"] = nullptr;
  } else {
    j["num_experts"] = n_experts;
    j["moe_intermediate_size"] = expert_hidden;
    j["norm_topk_prob"] = norm_topk_prob;
  }
  if (model_type == "olmoe") {
    j["intermediate_size"] = expert_hidden;
    j.erase("moe_intermediate_size");
    j.erase("head_dim");
    j["clip_qkv"] = nullptr;
  }
  if (model_type == "qwen3_moe" || model_type == "qwen2_moe" || model_type == "rlpost_moe") {
    j["decoder_sparse_step"] = decoder_sparse_step;
    j["mlp_only_layers"] = mlp_only_layers;
    j["use_sliding_window"] = false;
  }
  if (model_type == "qwen3_moe" || model_type == "olmoe" || model_type == "rlpost_moe") {
    j["attention_bias"] = qkv_bias;
  }
  if (model_type == "qwen2_moe" || model_type == "rlpost_moe") {
    j["shared_expert_intermediate_size"] = shared_expert_hidden;
  }
  if (model_type == "qwen2_moe") j["qkv_bias"] = qkv_bias;
  if (model_type == "rlpost_moe") {
    j["qk_norm"] = QkNormName(qk_norm);
    j["shared_expert_gate"] = shared_expert_gate;
    j["first_k_dense_replace"] = first_k_dense;
  }
  if (mtp_layers > 0) j["num_nextn_predict_layers"] = mtp_layers;
  j["rlpost_init_seed"] = init_seed;
  j["torch_dtype"] = torch_dtype;
  j["dtype"] = torch_dtype;  // the name transformers 5 uses
  return j.dump(2);
}

absl::StatusOr<ModelConfig> ParseConfigJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("config.json: not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("config.json: not a JSON object");
  const std::string supported = absl::StrJoin(SupportedModelTypes(), ", ");
  if (!j.contains("model_type") || !j["model_type"].is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: field 'model_type' missing; supported: ", supported));
  }
  const std::string type = j["model_type"].get<std::string>();
  const auto& types = SupportedModelTypes();
  if (std::find(types.begin(), types.end(), type) == types.end()) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: model_type '", type,
                                                   "' is not supported; supported: ", supported));
  }
  ModelConfig c = DefaultsFor(type);
  FieldReader r(j);
  r.Int("vocab_size", &c.vocab_size, /*required=*/true);
  r.Int("hidden_size", &c.d_model, /*required=*/true);
  r.Int("num_hidden_layers", &c.n_layers, /*required=*/true);
  r.Int("num_attention_heads", &c.n_heads, /*required=*/true);
  if (type == "olmoe" || type == "rlpost_moe") c.n_kv_heads = c.n_heads;
  r.Int("num_key_value_heads", &c.n_kv_heads);
  r.Int("head_dim", &c.explicit_head_dim);
  r.Int("max_position_embeddings", &c.max_seq_len);
  r.Double("rope_theta", &c.rope_theta);
  r.Double("rms_norm_eps", &c.rms_eps);
  r.Bool("tie_word_embeddings", &c.tie_word_embeddings);
  r.Int("num_experts_per_tok", &c.top_k, /*required=*/true);
  r.Double("router_aux_loss_coef", &c.router_aux_loss_coef);
  r.Int("num_nextn_predict_layers", &c.mtp_layers);
  int64_t seed = static_cast<int64_t>(c.init_seed);
  r.Int("rlpost_init_seed", &seed);
  c.init_seed = static_cast<uint64_t>(seed);
  if (type == "mixtral") {
    r.Int("num_local_experts", &c.n_experts, /*required=*/true);
    r.Int("intermediate_size", &c.expert_hidden, /*required=*/true);
    c.intermediate_size = c.expert_hidden;
  } else if (type == "olmoe") {
    r.Int("num_experts", &c.n_experts, /*required=*/true);
    r.Int("intermediate_size", &c.expert_hidden, /*required=*/true);
    c.intermediate_size = c.expert_hidden;
    r.Bool("norm_topk_prob", &c.norm_topk_prob);
    r.Bool("attention_bias", &c.qkv_bias);
    c.o_bias = c.qkv_bias;
  } else {
    r.Int("num_experts", &c.n_experts, /*required=*/true);
    r.Int("moe_intermediate_size", &c.expert_hidden, /*required=*/true);
    r.Int("intermediate_size", &c.intermediate_size);
    r.Bool("norm_topk_prob", &c.norm_topk_prob);
    r.Int("decoder_sparse_step", &c.decoder_sparse_step);
    r.IntList("mlp_only_layers", &c.mlp_only_layers);
    if (type != "qwen2_moe") {
      r.Bool("attention_bias", &c.qkv_bias);
      c.o_bias = c.qkv_bias;
    } else {
      r.Bool("qkv_bias", &c.qkv_bias);  // newer transformers; q/k/v only
    }
    if (type != "qwen3_moe") r.Int("shared_expert_intermediate_size", &c.shared_expert_hidden);
    if (type == "rlpost_moe") {
      r.Bool("shared_expert_gate", &c.shared_expert_gate);
      r.Int("first_k_dense_replace", &c.first_k_dense);
      if (r.Has("qk_norm")) {
        const json& q = j["qk_norm"];
        std::string name = q.is_string() ? q.get<std::string>() : "";
        if (name == "none") c.qk_norm = QkNorm::kNone;
        else if (name == "per_head") c.qk_norm = QkNorm::kPerHead;
        else if (name == "full") c.qk_norm = QkNorm::kFull;
        else r.Fail("qk_norm", "must be \"none\", \"per_head\" or \"full\"");
      }
    }
  }
  if (!r.status().ok()) return r.status();

  // transformers 5 keeps rope_theta and the scaling type in rope_parameters.
  if (r.Has("rope_parameters")) {
    const json& p = j["rope_parameters"];
    if (!p.is_object()) {
      return absl::InvalidArgumentError("config.json: field 'rope_parameters' must be an object");
    }
    if (p.contains("rope_theta")) {
      if (!p["rope_theta"].is_number()) {
        return absl::InvalidArgumentError(
            "config.json: field 'rope_parameters.rope_theta' must be a number");
      }
      c.rope_theta = p["rope_theta"].get<double>();
    }
    if (p.contains("rope_type") &&
        (!p["rope_type"].is_string() || p["rope_type"].get<std::string>() != "default")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json: rope_parameters.rope_type ", p["rope_type"].dump(),
          " is not supported; only \"default\" (plain rotary embeddings)"));
    }
  }
  // Features we do not implement are refused, not silently ignored.
  if (r.Has("rope_scaling")) {
    const json& s = j["rope_scaling"];
    std::string kind = s.is_object() && s.contains("rope_type") && s["rope_type"].is_string()
                           ? s["rope_type"].get<std::string>()
                       : s.is_object() && s.contains("type") && s["type"].is_string()
                           ? s["type"].get<std::string>()
                           : "";
    if (kind != "default") {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json: rope_scaling '", kind.empty() ? s.dump() : kind,
          "' is not supported; set \"rope_scaling\": null (plain rotary embeddings)"));
    }
  }
  bool sliding = false;
  r.Bool("use_sliding_window", &sliding);
  if (sliding || (type == "mixtral" && r.Has("sliding_window"))) {
    return absl::InvalidArgumentError(
        "config.json: sliding-window attention is not supported; set \"sliding_window\": null "
        "(and \"use_sliding_window\": false)");
  }
  if (r.Has("clip_qkv")) {
    return absl::InvalidArgumentError(
        "config.json: clip_qkv is not supported; set \"clip_qkv\": null");
  }
  if (r.Has("hidden_act") &&
      (!j["hidden_act"].is_string() || j["hidden_act"].get<std::string>() != "silu")) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: hidden_act ", j["hidden_act"].dump(),
                     " is not supported; only \"silu\" (SwiGLU experts)"));
  }

  json rest = json::object();
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool interpreted = false;
    for (const char* k : kInterpretedKeys) interpreted = interpreted || it.key() == k;
    if (!interpreted) rest[it.key()] = it.value();
  }
  c.passthrough_json = rest.dump();
  if (absl::Status s = c.Validate(); !s.ok()) return s;
  return c;
}

absl::StatusOr<ModelConfig> ReadConfigJsonFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<ModelConfig> config = ParseConfigJson(text.str());
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

}  // namespace rlpost
