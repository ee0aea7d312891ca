// rlpost reward plugin SDK for C++17: header-only, over the C ABI in
// reward_plugin.h, using nothing but the standard library.
//
//   #include <rlpost/reward_plugin.hpp>
//
//   class KeywordBonus : public rlpost::plugin::RewardFunction {
//    public:
//     explicit KeywordBonus(std::string_view config) { ... }  // throw InvalidConfig
//     std::vector<double> Score(const std::vector<rlpost::plugin::Sample>& batch) override;
//   };
//
//   RLPOST_REWARD_PLUGIN("example", "1.0.0", registry) {
//     registry.Add<KeywordBonus>("keyword_bonus");
//   }
//
// Exceptions never cross the ABI: InvalidConfig becomes
// RLPOST_REWARD_INVALID_ARGUMENT, any other exception RLPOST_REWARD_INTERNAL,
// each with its what() as the message. Score must return one finite score per
// sample. The threading rules of reward_plugin.h apply: one RewardFunction
// object is never called concurrently, different ones may be.
#ifndef RLPOST_REWARD_PLUGIN_HPP_
#define RLPOST_REWARD_PLUGIN_HPP_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rlpost/reward_plugin.h"

namespace rlpost::plugin {

// One completion, viewed in the host's memory (valid during Score only).
struct Sample {
  std::string_view prompt, response, reference, prompt_id, verdict, finish_reason;
  const int32_t* response_token_ids = nullptr;
  size_t response_token_count = 0;
  uint32_t max_response_tokens = 0;
  uint32_t group = 0, index_in_group = 0;
  bool correct = false;
  double verifier_score = 0.0;
};

class RewardFunction {
 public:
  virtual ~RewardFunction() = default;
  // One score per sample, in order.
  virtual std::vector<double> Score(const std::vector<Sample>& batch) = 0;
};

// Thrown by a constructor (or factory) for configuration it cannot accept.
class InvalidConfig : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using Factory = std::function<std::unique_ptr<RewardFunction>(std::string_view config)>;

class Registry {
 public:
  // T is constructible from std::string_view (the config bytes).
  template <typename T>
  void Add(const char* name) {
    Add(name, [](std::string_view config) { return std::make_unique<T>(config); });
  }
  void Add(const char* name, Factory factory) {
    auto [it, inserted] = factories_.insert_or_assign(name, std::move(factory));
    if (inserted) names_.push_back(it->first.c_str());  // map keys never move
  }

  const Factory* Find(const char* name) const {
    auto it = factories_.find(name);
    return it == factories_.end() ? nullptr : &it->second;
  }
  const std::vector<const char*>& names() const { return names_; }

 private:
  std::map<std::string, Factory> factories_;
  std::vector<const char*> names_;
};

// Splits "key=value" pairs separated by newlines or commas (blank pieces
// ignored, whitespace around keys and values trimmed); throws InvalidConfig
// on a piece without '='.
inline std::map<std::string, std::string> ParseKeyValues(std::string_view config) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
      s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
      s.remove_suffix(1);
    }
    return s;
  };
  std::map<std::string, std::string> out;
  size_t start = 0;
  while (start <= config.size()) {
    size_t end = config.find_first_of(",\n", start);
    if (end == std::string_view::npos) end = config.size();
    std::string_view piece = trim(config.substr(start, end - start));
    if (!piece.empty()) {
      size_t eq = piece.find('=');
      if (eq == std::string_view::npos) {
        throw InvalidConfig("expected key=value, got '" + std::string(piece) + "'");
      }
      out[std::string(trim(piece.substr(0, eq)))] = std::string(trim(piece.substr(eq + 1)));
    }
    start = end + 1;
  }
  return out;
}

// Writes to the host's log (no-op before init).
void Log(int level, const std::string& message);

namespace internal {

struct State {
  const rlpost_reward_host* host = nullptr;
  Registry registry;
  std::vector<const char*> function_names;  // NULL-terminated
  const char* name = "";
  const char* version = "";
};

inline State& GetState() {
  static State state;
  return state;
}

inline void SetError(rlpost_reward_error* error, const std::string& message) {
  if (error == nullptr || error->message == nullptr || error->capacity == 0) return;
  const size_t n = message.size() < error->capacity - 1 ? message.size() : error->capacity - 1;
  std::memcpy(error->message, message.data(), n);
  error->message[n] = '\0';
}

inline rlpost_reward_status Init(const rlpost_reward_host* host, rlpost_reward_error*) {
  GetState().host = host;
  return RLPOST_REWARD_OK;
}

// Runs `body` (returning a status); an exception becomes a status and message.
template <typename Body>
rlpost_reward_status Guarded(rlpost_reward_error* error, Body&& body) {
  try {
    return body();
  } catch (const InvalidConfig& e) {
    SetError(error, e.what());
    return RLPOST_REWARD_INVALID_ARGUMENT;
  } catch (const std::exception& e) {
    SetError(error, e.what());
    return RLPOST_REWARD_INTERNAL;
  } catch (...) {
    SetError(error, "unknown exception");
    return RLPOST_REWARD_INTERNAL;
  }
}

inline rlpost_reward_status ConfigNew(const char* function, const char* config,
                                      size_t config_size, void** config_out,
                                      rlpost_reward_error* error) {
  const Factory* factory = GetState().registry.Find(function);
  if (factory == nullptr) {
    SetError(error, std::string("no reward function named '") + function + "'");
    return RLPOST_REWARD_INVALID_ARGUMENT;
  }
  return Guarded(error, [&] {
    std::unique_ptr<RewardFunction> f = (*factory)(std::string_view(config, config_size));
    *config_out = f.release();
    return RLPOST_REWARD_OK;
  });
}

inline std::string_view View(const char* data, size_t size) {
  return data == nullptr ? std::string_view() : std::string_view(data, size);
}

inline rlpost_reward_status ScoreBatch(void* config, const rlpost_reward_batch* batch,
                                       double* scores, size_t capacity, size_t* written,
                                       rlpost_reward_error* error) {
  *written = 0;
  if (batch->count > 0 && batch->sample_size < sizeof(rlpost_reward_sample)) {
    SetError(error, "the host's samples are older than this plugin's ABI minor version");
    return RLPOST_REWARD_UNSUPPORTED;
  }
  return Guarded(error, [&] {
    std::vector<Sample> samples(batch->count);
    const char* base = reinterpret_cast<const char*>(batch->samples);
    for (size_t i = 0; i < batch->count; ++i) {
      const auto& s = *reinterpret_cast<const rlpost_reward_sample*>(base + i * batch->sample_size);
      Sample& out = samples[i];
      out.prompt = View(s.prompt, s.prompt_size);
      out.response = View(s.response, s.response_size);
      out.reference = View(s.reference, s.reference_size);
      out.prompt_id = View(s.prompt_id, s.prompt_id_size);
      out.verdict = View(s.verdict, s.verdict_size);
      out.finish_reason = View(s.finish_reason, s.finish_reason_size);
      out.response_token_ids = s.response_token_ids;
      out.response_token_count = s.response_token_count;
      out.max_response_tokens = s.max_response_tokens;
      out.group = s.group;
      out.index_in_group = s.index_in_group;
      out.correct = s.correct != 0;
      out.verifier_score = s.verifier_score;
    }
    std::vector<double> result = static_cast<RewardFunction*>(config)->Score(samples);
    if (result.size() != batch->count) {
      SetError(error, "Score returned " + std::to_string(result.size()) + " scores for " +
                          std::to_string(batch->count) + " samples");
      return RLPOST_REWARD_INTERNAL;
    }
    const size_t n = result.size() < capacity ? result.size() : capacity;
    for (size_t i = 0; i < n; ++i) scores[i] = result[i];
    *written = n;
    return RLPOST_REWARD_OK;
  });
}

inline void ConfigDestroy(void* config) { delete static_cast<RewardFunction*>(config); }

inline void Fini() { GetState().host = nullptr; }

inline rlpost_reward_status Entry(const rlpost_reward_host* host, rlpost_reward_plugin* plugin,
                                  const char* name, const char* version,
                                  void (*register_functions)(Registry&)) {
  if (host == nullptr || plugin == nullptr) return RLPOST_REWARD_INVALID_ARGUMENT;
  State& state = GetState();
  state.name = name;
  state.version = version;
  state.registry = Registry();
  register_functions(state.registry);
  state.function_names = state.registry.names();
  state.function_names.push_back(nullptr);

  rlpost_reward_plugin table;
  std::memset(&table, 0, sizeof(table));
  table.struct_size = plugin->struct_size;
  table.abi_major = RLPOST_REWARD_ABI_MAJOR;
  table.abi_minor = RLPOST_REWARD_ABI_MINOR;
  table.name = state.name;
  table.version = state.version;
  table.functions = state.function_names.data();
  table.init = &Init;
  table.config_new = &ConfigNew;
  table.score_batch = &ScoreBatch;
  table.config_destroy = &ConfigDestroy;
  table.fini = &Fini;
  // Never write past the size the host gave; the version fields come first
  // so even a host of another major version reads them.
  const size_t n = plugin->struct_size < sizeof(table) ? plugin->struct_size : sizeof(table);
  std::memcpy(plugin, &table, n);
  return RLPOST_REWARD_OK;
}

}  // namespace internal

inline void Log(int level, const std::string& message) {
  const rlpost_reward_host* host = internal::GetState().host;
  if (host != nullptr && host->log != nullptr) host->log(host->host_context, level, message.c_str());
}

}  // namespace rlpost::plugin

// Defines the plugin's entry symbol; the braces that follow register its
// reward functions on `registry_var` (an rlpost::plugin::Registry&).
#define RLPOST_REWARD_PLUGIN(plugin_name, plugin_version, registry_var)                     \
  static void rlpost_reward_plugin_register(::rlpost::plugin::Registry& registry_var);     \
  extern "C" RLPOST_REWARD_EXPORT rlpost_reward_status rlpost_reward_plugin_entry(          \
      const rlpost_reward_host* host, rlpost_reward_plugin* plugin) {                       \
    return ::rlpost::plugin::internal::Entry(host, plugin, plugin_name, plugin_version,      \
                                             &rlpost_reward_plugin_register);                \
  }                                                                                          \
  static void rlpost_reward_plugin_register(::rlpost::plugin::Registry& registry_var)

#endif  // RLPOST_REWARD_PLUGIN_HPP_
