#pragma once
// Typed, schema-checked configuration: YAML files plus key=value overrides.
//
// A config is a flat map from dotted keys ("rl.group_size") to values. Every
// key must be declared in a ConfigSchema with its type and default; a key that
// the schema does not know is an error naming the key and where it came from,
// so a typo never silently falls back to a default.
//
// Config is an immutable value after loading and may be read concurrently.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rlpost {

enum class ConfigType { kString, kInt, kDouble, kBool };

// A key may have "*" as one of its parts ("reward.plugins.*.path"): a family
// of keys, one per name the user picks for that part (letters, digits, '_'
// and '-'). A family member exists only once set; reading an unset member
// gives the family's default.
struct ConfigKey {
  std::string key;          // dotted path, e.g. "rl.group_size"
  ConfigType type;
  std::string default_value;
  std::string doc;
};

class ConfigSchema {
 public:
  ConfigSchema() = default;
  explicit ConfigSchema(std::vector<ConfigKey> keys);

  const ConfigKey* Find(const std::string& key) const;
  const std::vector<ConfigKey>& keys() const { return keys_; }

 private:
  std::vector<ConfigKey> keys_;
};

class Config {
 public:
  // Defaults only.
  explicit Config(const ConfigSchema& schema);

  // Loads `path` (may be empty: defaults only), then applies `overrides`
  // ("key=value" strings) in order. Errors name the file or the override.
  static absl::StatusOr<Config> Load(const ConfigSchema& schema,
                                     const std::string& path,
                                     const std::vector<std::string>& overrides);

  // Parses YAML text; `origin` names it in error messages.
  static absl::StatusOr<Config> FromYaml(const ConfigSchema& schema,
                                         const std::string& yaml_text,
                                         const std::string& origin);

  // Sets one key from its textual value, checking name and type.
  absl::Status Set(const std::string& key, const std::string& value,
                   const std::string& origin);
  absl::Status ApplyOverride(const std::string& key_equals_value);

  std::string GetString(const std::string& key) const;
  int64_t GetInt(const std::string& key) const;
  double GetDouble(const std::string& key) const;
  bool GetBool(const std::string& key) const;
  // The names set for the "*" part of the families under `prefix`
  // ("reward.plugins" -> {"bonus", ...}), sorted.
  std::vector<std::string> Instances(const std::string& prefix) const;

  // The resolved config as YAML text (every key, nested by dots).
  std::string ToYaml() const;
  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  const ConfigKey& Declared(const std::string& key) const;
  // The set value, or the declared default (an unset family member).
  const std::string& Value(const std::string& key) const;

  const ConfigSchema* schema_;
  std::map<std::string, std::string> values_;
};

}  // namespace rlpost
