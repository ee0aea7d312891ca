#include "model/hf_checkpoint_io.h"

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string_view>
#include <system_error>
#include <unordered_set>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace rlpost {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string JoinPath(const std::string& dir, absl::string_view file) {
  if (dir.empty() || dir.back() == '/') return absl::StrCat(dir, file);
  return absl::StrCat(dir, "/", file);
}

std::string Quoted(absl::string_view text) {
  constexpr size_t kMax = 160;
  if (text.size() <= kMax) return absl::StrCat("'", text, "'");
  return absl::StrCat("'", text.substr(0, kMax), "...' (", text.size(), " bytes)");
}

bool ConsumeDigits(std::string_view* s) {
  size_t n = 0;
  while (n < s->size() && (*s)[n] >= '0' && (*s)[n] <= '9') ++n;
  s->remove_prefix(n);
  return n >= 5;
}

bool ConsumePrefix(std::string_view* s, std::string_view prefix) {
  if (s->substr(0, prefix.size()) != prefix) return false;
  s->remove_prefix(prefix.size());
  return true;
}

// True for names of the form model-DDDDD-of-DDDDD.safetensors (5+ digits).
bool IsShardFileName(std::string_view name) {
  return ConsumePrefix(&name, "model-") && ConsumeDigits(&name) && ConsumePrefix(&name, "-of-") &&
         ConsumeDigits(&name) && name == ".safetensors";
}

// Shard assignment: the tensors of each shard, in order.
std::vector<std::vector<const RawTensor*>> PlanShards(const std::vector<RawTensor>& tensors,
                                                      int64_t max_shard_bytes) {
  std::vector<std::vector<const RawTensor*>> shards;
  int64_t shard_bytes = 0;
  for (const RawTensor& t : tensors) {
    int64_t size = static_cast<int64_t>(t.bytes.size());
    if (shards.empty() || (!shards.back().empty() && size > max_shard_bytes - shard_bytes)) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(&t);
    shard_bytes += size;
  }
  return shards;
}

absl::Status RemoveIfPresent(const std::string& path) {
  std::error_code ec;
  fs::remove(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return absl::InternalError(
        absl::StrCat("cannot remove stale '", path, "': ", ec.message(), "; remove it by hand"));
  }
  return absl::OkStatus();
}

// Removes HF-named shard files in `dir` that are not in `keep`.
absl::Status RemoveStaleShards(const std::string& dir, const std::set<std::string>& keep) {
  std::error_code ec;
  std::vector<std::string> stale;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (IsShardFileName(name) && keep.count(name) == 0) stale.push_back(name);
  }
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot list '", dir, "': ", ec.message()));
  }
  for (const std::string& name : stale) {
    absl::Status s = RemoveIfPresent(JoinPath(dir, name));
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Rename(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    std::error_code ec(errno, std::generic_category());
    return absl::InternalError(
        absl::StrCat("cannot rename '", from, "' to '", to, "': ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  std::error_code ec;
  uintmax_t size = fs::file_size(path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot read '", path, "': ", ec.message()));
  if (size > kMaxSafetensorsHeaderBytes) {
    return absl::DataLossError(absl::StrCat(path, ": ", size, " bytes is over the ",
                                            kMaxSafetensorsHeaderBytes,
                                            "-byte limit for an index file"));
  }
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad() || !in.is_open()) {
    return absl::InternalError(absl::StrCat("cannot read '", path, "'"));
  }
  return text;
}

// A shard file name from an index: a plain file name inside the checkpoint
// directory (no separators, no "..": the index is untrusted input).
bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string("/\\\0", 3)) == std::string::npos;
}

absl::StatusOr<std::vector<RawTensor>> ReadSharded(const std::string& dir,
                                                   const std::string& index_path,
                                                   const SafetensorsReadOptions& options) {
  absl::StatusOr<std::string> text = ReadSmallFile(index_path);
  if (!text.ok()) return text.status();
  json index;
  absl::Status s = ParseCheckpointJson(*text, index_path, &index);
  if (!s.ok()) return s;
  if (!index.is_object()) {
    return absl::DataLossError(
        absl::StrCat(index_path, ": expected a JSON object with a \"weight_map\""));
  }
  auto map_it = index.find("weight_map");
  if (map_it == index.end() || !map_it->is_object()) {
    return absl::DataLossError(absl::StrCat(
        index_path, ": \"weight_map\" ", map_it == index.end() ? "missing" : "is not an object",
        "; expected {\"tensor.name\": \"model-00001-of-0000N.safetensors\", ...}"));
  }
  const json& weight_map = *map_it;
  // shard file -> tensors the index maps to it
  std::map<std::string, std::vector<std::string>> shards;
  for (const auto& item : weight_map.items()) {
    if (!item.value().is_string() || !IsPlainFileName(item.value().get_ref<const std::string&>())) {
      return absl::DataLossError(absl::StrCat(
          index_path, ": tensor ", Quoted(item.key()), " maps to ", Quoted(item.value().dump()),
          ", expected a file name in the checkpoint directory"));
    }
    shards[item.value().get<std::string>()].push_back(item.key());
  }

  std::vector<RawTensor> out;
  for (const auto& [file, names] : shards) {
    std::string path = JoinPath(dir, file);
    absl::StatusOr<std::vector<RawTensor>> tensors = ReadSafetensors(path, options);
    if (!tensors.ok()) {
      return absl::Status(tensors.status().code(),
                          absl::StrCat(index_path, " maps tensor ", Quoted(names.front()), " to ",
                                       Quoted(file), ": ", tensors.status().message()));
    }
    std::unordered_set<std::string> found;
    for (RawTensor& t : *tensors) {
      auto it = weight_map.find(t.name);
      if (it == weight_map.end()) {
        return absl::DataLossError(absl::StrCat(path, ": tensor ", Quoted(t.name),
                                                " is not in the weight_map of ", index_path));
      }
      if (it->get_ref<const std::string&>() != file) {
        return absl::DataLossError(absl::StrCat(path, ": tensor ", Quoted(t.name), " is mapped to ",
                                                Quoted(it->get_ref<const std::string&>()), " by ",
                                                index_path));
      }
      found.insert(t.name);
      out.push_back(std::move(t));
    }
    for (const std::string& name : names) {
      if (found.count(name) == 0) {
        return absl::DataLossError(absl::StrCat(index_path, " maps tensor ", Quoted(name), " to ",
                                                Quoted(file), ", which does not contain it"));
      }
    }
  }
  return out;
}

}  // namespace

std::string ShardFileName(int shard, int num_shards) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "model-%05d-of-%05d.safetensors", shard, num_shards);
  return buf;
}

absl::Status WriteCheckpointWeights(const std::string& dir, const std::vector<RawTensor>& tensors,
                                    int64_t max_shard_bytes) {
  if (max_shard_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_shard_bytes is ", max_shard_bytes, "; it must be positive"));
  }
  std::unordered_set<std::string_view> names;
  for (const RawTensor& t : tensors) {
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint '", dir, "': tensor ",
                                                     Quoted(t.name), " is given more than once"));
    }
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create '", dir, "': ", ec.message()));

  const std::string index_path = JoinPath(dir, kWeightsIndexFileName);
  const std::string single_path = JoinPath(dir, kSingleWeightsFileName);
  std::vector<std::vector<const RawTensor*>> shards = PlanShards(tensors, max_shard_bytes);

  if (shards.size() <= 1) {
    absl::Status s = WriteSafetensors(single_path, tensors);
    if (!s.ok()) return s;
    // Removing the index is the switch-over for index-first readers.
    s = RemoveIfPresent(index_path);
    if (!s.ok()) return s;
    return RemoveStaleShards(dir, {});
  }

  const int n = static_cast<int>(shards.size());
  std::set<std::string> files;
  json weight_map = json::object();
  uint64_t total_size = 0;
  for (int i = 0; i < n; ++i) {
    std::string file = ShardFileName(i + 1, n);
    std::string tmp = JoinPath(dir, file) + ".tmp";
    absl::Status s = WriteSafetensorsSubset(tmp, shards[i]);
    if (!s.ok()) {
      for (const std::string& written : files)
        std::remove((JoinPath(dir, written) + ".tmp").c_str());
      return s;
    }
    files.insert(file);
    for (const RawTensor* t : shards[i]) {
      weight_map[t->name] = file;
      total_size += t->bytes.size();
    }
  }
  for (const std::string& file : files) {
    absl::Status s = Rename(JoinPath(dir, file) + ".tmp", JoinPath(dir, file));
    if (!s.ok()) return s;
  }
  json index = {{"metadata", {{"total_size", total_size}}}, {"weight_map", std::move(weight_map)}};
  std::string text = index.dump(2) + "\n";
  // Replacing the index is the switch-over for index-first readers.
  absl::Status s = WriteFileAtomically(index_path, {text});
  if (!s.ok()) return s;
  s = RemoveIfPresent(single_path);
  if (!s.ok()) return s;
  return RemoveStaleShards(dir, files);
}

absl::StatusOr<std::vector<RawTensor>> ReadCheckpointWeights(
    const std::string& dir, const SafetensorsReadOptions& options) {
  const std::string index_path = JoinPath(dir, kWeightsIndexFileName);
  const std::string single_path = JoinPath(dir, kSingleWeightsFileName);
  std::error_code ec;
  if (fs::exists(index_path, ec)) return ReadSharded(dir, index_path, options);
  if (fs::exists(single_path, ec)) return ReadSafetensors(single_path, options);
  return absl::NotFoundError(absl::StrCat("no weights in '", dir, "': neither ",
                                          kWeightsIndexFileName, " nor ", kSingleWeightsFileName,
                                          " exists there"));
}

}  // namespace rlpost
