#include "common/config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/ascii.h"

namespace rlpost {
namespace {

absl::Status CheckType(const ConfigKey& decl, const std::string& value,
                       const std::string& origin) {
  switch (decl.type) {
    case ConfigType::kString:
      return absl::OkStatus();
    case ConfigType::kInt: {
      int64_t v;
      if (absl::SimpleAtoi(value, &v)) return absl::OkStatus();
      return absl::InvalidArgumentError(absl::StrCat(
          origin, ": key '", decl.key, "' must be an integer, got '", value, "'"));
    }
    case ConfigType::kDouble: {
      double v;
      if (absl::SimpleAtod(value, &v)) return absl::OkStatus();
      return absl::InvalidArgumentError(absl::StrCat(
          origin, ": key '", decl.key, "' must be a number, got '", value, "'"));
    }
    case ConfigType::kBool: {
      bool v;
      if (absl::SimpleAtob(value, &v)) return absl::OkStatus();
      return absl::InvalidArgumentError(absl::StrCat(
          origin, ": key '", decl.key, "' must be true or false, got '", value, "'"));
    }
  }
  return absl::OkStatus();
}

absl::Status Flatten(const YAML::Node& node, const std::string& prefix,
                     const std::string& origin, Config* config) {
  if (node.IsMap()) {
    for (const auto& kv : node) {
      std::string name = kv.first.as<std::string>();
      std::string key = prefix.empty() ? name : absl::StrCat(prefix, ".", name);
      absl::Status s = Flatten(kv.second, key, origin, config);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }
  if (prefix.empty()) {
    if (node.IsNull()) return absl::OkStatus();  // empty file
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": top level must be a mapping of sections"));
  }
  if (node.IsSequence()) {
    return absl::InvalidArgumentError(absl::StrCat(
        origin, ": key '", prefix, "' is a list; only scalar values are supported"));
  }
  std::string value = node.IsNull() ? "" : node.as<std::string>();
  return config->Set(prefix, value, origin);
}

}  // namespace

ConfigSchema::ConfigSchema(std::vector<ConfigKey> keys) : keys_(std::move(keys)) {}

namespace {

bool IsInstanceName(const std::string& part) {
  if (part.empty()) return false;
  for (char c : part) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

// `key` is a member of the family `pattern` (parts "*" match a name).
bool MatchesFamily(const std::string& pattern, const std::string& key) {
  std::vector<std::string> p = absl::StrSplit(pattern, '.');
  std::vector<std::string> k = absl::StrSplit(key, '.');
  if (p.size() != k.size()) return false;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == "*" ? !IsInstanceName(k[i]) : p[i] != k[i]) return false;
  }
  return true;
}

bool IsFamily(const ConfigKey& k) { return k.key.find('*') != std::string::npos; }

}  // namespace

const ConfigKey* ConfigSchema::Find(const std::string& key) const {
  for (const ConfigKey& k : keys_) {
    if (k.key == key) return &k;
  }
  for (const ConfigKey& k : keys_) {
    if (IsFamily(k) && MatchesFamily(k.key, key)) return &k;
  }
  return nullptr;
}

Config::Config(const ConfigSchema& schema) : schema_(&schema) {
  for (const ConfigKey& k : schema.keys()) {
    if (!IsFamily(k)) values_[k.key] = k.default_value;
  }
}

std::vector<std::string> Config::Instances(const std::string& prefix) const {
  std::vector<std::string> out;
  const std::string start = prefix + ".";
  for (auto it = values_.lower_bound(start); it != values_.end(); ++it) {
    if (it->first.compare(0, start.size(), start) != 0) break;
    const std::string name = it->first.substr(start.size(), it->first.find('.', start.size()) -
                                                                 start.size());
    if (out.empty() || out.back() != name) out.push_back(name);
  }
  return out;
}

absl::StatusOr<Config> Config::Load(const ConfigSchema& schema,
                                    const std::string& path,
                                    const std::vector<std::string>& overrides) {
  Config config(schema);
  if (!path.empty()) {
    std::ifstream in(path);
    if (!in) {
      return absl::NotFoundError(absl::StrCat("config file '", path,
                                              "' cannot be opened"));
    }
    std::stringstream text;
    text << in.rdbuf();
    absl::StatusOr<Config> parsed = FromYaml(schema, text.str(), path);
    if (!parsed.ok()) return parsed.status();
    config = *std::move(parsed);
  }
  for (const std::string& o : overrides) {
    absl::Status s = config.ApplyOverride(o);
    if (!s.ok()) return s;
  }
  return config;
}

absl::StatusOr<Config> Config::FromYaml(const ConfigSchema& schema,
                                        const std::string& yaml_text,
                                        const std::string& origin) {
  Config config(schema);
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        origin, ": YAML syntax error at line ", e.mark.line + 1, ": ", e.msg));
  }
  try {
    absl::Status s = Flatten(root, "", origin, &config);
    if (!s.ok()) return s;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": cannot read config: ", e.what()));
  }
  return config;
}

absl::Status Config::Set(const std::string& key, const std::string& value,
                         const std::string& origin) {
  const ConfigKey* decl = schema_->Find(key);
  if (decl == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": unknown config key '", key,
                     "' (see docs/configuration.md for the valid keys)"));
  }
  absl::Status s = CheckType(*decl, value, origin);
  if (!s.ok()) return s;
  values_[key] = value;
  return absl::OkStatus();
}

absl::Status Config::ApplyOverride(const std::string& key_equals_value) {
  size_t eq = key_equals_value.find('=');
  if (eq == std::string::npos || eq == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "command line: override '", key_equals_value, "' must look like key=value"));
  }
  return Set(std::string(absl::StripAsciiWhitespace(key_equals_value.substr(0, eq))),
             std::string(absl::StripAsciiWhitespace(key_equals_value.substr(eq + 1))),
             "command line");
}

const ConfigKey& Config::Declared(const std::string& key) const {
  const ConfigKey* decl = schema_->Find(key);
  if (decl == nullptr) {
    // A read of an undeclared key is a bug in our code, not a user error.
    std::fprintf(stderr, "rlpost: internal error: undeclared config key '%s'\n",
                 key.c_str());
    std::abort();
  }
  return *decl;
}

const std::string& Config::Value(const std::string& key) const {
  const ConfigKey& decl = Declared(key);
  auto it = values_.find(key);
  return it != values_.end() ? it->second : decl.default_value;
}

std::string Config::GetString(const std::string& key) const {
  return Value(key);
}

int64_t Config::GetInt(const std::string& key) const {
  int64_t v = 0;
  (void)absl::SimpleAtoi(Value(key), &v);
  return v;
}

double Config::GetDouble(const std::string& key) const {
  double v = 0;
  (void)absl::SimpleAtod(Value(key), &v);
  return v;
}

bool Config::GetBool(const std::string& key) const {
  bool v = false;
  (void)absl::SimpleAtob(Value(key), &v);
  return v;
}

std::string Config::ToYaml() const {
  // values_ is sorted, so keys sharing a prefix are adjacent: open a nested
  // mapping for each new prefix part.
  std::string out;
  std::vector<std::string> open;
  for (const auto& [key, value] : values_) {
    std::vector<std::string> parts = absl::StrSplit(key, '.');
    size_t common = 0;
    while (common < open.size() && common + 1 < parts.size() && open[common] == parts[common]) {
      ++common;
    }
    open.resize(common);
    for (size_t i = common; i + 1 < parts.size(); ++i) {
      absl::StrAppend(&out, std::string(2 * i, ' '), parts[i], ":\n");
      open.push_back(parts[i]);
    }
    YAML::Emitter scalar;
    scalar << YAML::DoubleQuoted << value;
    absl::StrAppend(&out, std::string(2 * (parts.size() - 1), ' '), parts.back(), ": ",
                    scalar.c_str(), "\n");
  }
  return out;
}

}  // namespace rlpost
