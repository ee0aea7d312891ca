#include "model/safetensors.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace rlpost {
namespace {

const char* DTypeName(RawDType d) { return d == RawDType::kFloat32 ? "F32" : "BF16"; }

}  // namespace

absl::Status WriteSafetensors(const std::string& path, const std::vector<RawTensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  size_t offset = 0;
  for (const RawTensor& t : tensors) {
    header[t.name] = {{"dtype", DTypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  header["__metadata__"] = {{"format", "pt"}};
  std::string text = header.dump();
  // Pad the header so the data starts 8-byte aligned.
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  uint64_t n = text.size();
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const RawTensor& t : tensors) {
      out.write(t.bytes.data(), static_cast<std::streamsize>(t.bytes.size()));
    }
    if (!out) return absl::InternalError(absl::StrCat("cannot write '", tmp, "'"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename '", tmp, "' to '", path, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RawTensor>> ReadSafetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  std::stringstream buf;
  buf << in.rdbuf();
  std::string data = buf.str();
  if (data.size() < 8) {
    return absl::DataLossError(absl::StrCat(path, ": too short for a safetensors file"));
  }
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(data[i])) << (8 * i);
  if (n > data.size() - 8) {
    return absl::DataLossError(absl::StrCat(path, ": header length ", n, " exceeds file size"));
  }
  nlohmann::json header = nlohmann::json::parse(data.substr(8, n), nullptr, /*allow_exceptions=*/false);
  if (!header.is_object()) {
    return absl::DataLossError(absl::StrCat(path, ": header is not a JSON object"));
  }
  std::vector<RawTensor> out;
  size_t base = 8 + n;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const nlohmann::json& e = it.value();
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets")) {
      return absl::DataLossError(absl::StrCat(path, ": entry '", it.key(), "' is malformed"));
    }
    RawTensor t;
    t.name = it.key();
    std::string dtype = e["dtype"].is_string() ? e["dtype"].get<std::string>() : "";
    if (dtype == "F32") {
      t.dtype = RawDType::kFloat32;
    } else if (dtype == "BF16") {
      t.dtype = RawDType::kBFloat16;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor '", t.name, "' has unsupported dtype '", dtype, "'"));
    }
    try {
      t.shape = e["shape"].get<std::vector<int64_t>>();
      auto offsets = e["data_offsets"].get<std::vector<uint64_t>>();
      if (offsets.size() != 2 || offsets[0] > offsets[1] || base + offsets[1] > data.size() ||
          static_cast<int64_t>(offsets[1] - offsets[0]) != t.numel() * DTypeSize(t.dtype)) {
        return absl::DataLossError(
            absl::StrCat(path, ": tensor '", t.name, "' has inconsistent offsets"));
      }
      t.bytes = data.substr(base + offsets[0], offsets[1] - offsets[0]);
    } catch (const nlohmann::json::exception& ex) {
      return absl::DataLossError(absl::StrCat(path, ": tensor '", t.name, "': ", ex.what()));
    }
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace rlpost
