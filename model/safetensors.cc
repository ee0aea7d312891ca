#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <functional>
#include <limits>
#include <optional>
#include <string_view>
#include <system_error>
#include <unordered_set>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace rlpost {
namespace {

using nlohmann::json;

constexpr int kMaxJsonDepth = 16;

// Names and parser messages come from untrusted files; keep messages short.
std::string Quoted(absl::string_view text) {
  constexpr size_t kMax = 160;
  if (text.size() <= kMax) return absl::StrCat("'", text, "'");
  return absl::StrCat("'", text.substr(0, kMax), "...' (", text.size(), " bytes)");
}

std::string ErrnoText(int err) { return std::error_code(err, std::generic_category()).message(); }

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Bytes of a tensor with `shape` and `dtype`, or nullopt if a dimension is
// negative or a running product overflows int64.
std::optional<int64_t> CheckedByteCount(const std::vector<int64_t>& shape, RawDType dtype) {
  int64_t n = DTypeSize(dtype);
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) return std::nullopt;
    n *= d;
  }
  return n;
}

absl::Status CheckTensorBytes(const RawTensor& t, absl::string_view where) {
  std::optional<int64_t> want = CheckedByteCount(t.shape, t.dtype);
  if (!want) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": tensor ", Quoted(t.name), " has shape ", ShapeText(t.shape),
                     ", which has a negative dimension or more than 2^63-1 bytes"));
  }
  if (static_cast<uint64_t>(*want) != t.bytes.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": tensor ", Quoted(t.name), " holds ", t.bytes.size(), " bytes but shape ",
        ShapeText(t.shape), " of ", DTypeName(t.dtype), " needs ", *want));
  }
  return absl::OkStatus();
}

// True if no '[' or '{' outside strings opens more than `max_depth` levels.
// Runs before nlohmann so a hostile header cannot make it build a huge nest;
// where this scan and the parser could disagree the parser fails first.
bool NestingWithin(absl::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

std::optional<uint64_t> AsUint64(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) {
    int64_t x = v.get<int64_t>();
    if (x >= 0) return static_cast<uint64_t>(x);
  }
  return std::nullopt;
}

// Describes a JSON value in an error message: its type, and the value itself
// when it is a short scalar.
std::string Describe(const json& v) {
  if (v.is_structured()) return absl::StrCat("a JSON ", v.type_name());
  return absl::StrCat(Quoted(v.dump()), " (", v.type_name(), ")");
}

// Dtypes of the safetensors format that rlpost does not load. A dtype outside
// this list and ours means the file is corrupt (or from a newer format).
bool IsKnownUnsupportedDType(const std::string& d) {
  static const char* const kNames[] = {"BOOL",    "U8",  "I8",      "I16",     "U16",     "I32",
                                       "U32",     "I64", "U64",     "F64",     "F8_E4M3", "F8_E5M2",
                                       "F8_E8M0", "F4",  "F6_E2M3", "F6_E3M2", "C64"};
  for (const char* n : kNames) {
    if (d == n) return true;
  }
  return false;
}

struct TensorEntry {
  std::string name;
  RawDType dtype = RawDType::kFloat32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets into the data section
  uint64_t end = 0;
  size_t header_index = 0;
};

absl::StatusOr<TensorEntry> ParseEntry(const std::string& name, const json& e, uint64_t data_size,
                                       absl::string_view source) {
  std::string where = absl::StrCat(source, ": tensor ", Quoted(name));
  if (!e.is_object()) {
    return absl::DataLossError(absl::StrCat(where, ": entry is ", Describe(e),
                                            ", expected an object with dtype, shape and "
                                            "data_offsets"));
  }
  TensorEntry t;
  t.name = name;

  auto dtype_it = e.find("dtype");
  if (dtype_it == e.end()) return absl::DataLossError(absl::StrCat(where, ": 'dtype' missing"));
  if (!dtype_it->is_string()) {
    return absl::DataLossError(
        absl::StrCat(where, ": 'dtype' is ", Describe(*dtype_it), ", expected a string"));
  }
  const std::string& dtype = dtype_it->get_ref<const std::string&>();
  if (dtype == "F32") {
    t.dtype = RawDType::kFloat32;
  } else if (dtype == "BF16") {
    t.dtype = RawDType::kBFloat16;
  } else if (dtype == "F16") {
    t.dtype = RawDType::kFloat16;
  } else if (IsKnownUnsupportedDType(dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, " has dtype ", dtype,
        ", which rlpost does not load (supported: F32, BF16, F16); convert the checkpoint"));
  } else {
    return absl::DataLossError(absl::StrCat(where, ": unknown dtype ", Quoted(dtype)));
  }

  auto shape_it = e.find("shape");
  if (shape_it == e.end()) return absl::DataLossError(absl::StrCat(where, ": 'shape' missing"));
  if (!shape_it->is_array()) {
    return absl::DataLossError(
        absl::StrCat(where, ": 'shape' is ", Describe(*shape_it), ", expected an array"));
  }
  for (size_t i = 0; i < shape_it->size(); ++i) {
    const json& d = (*shape_it)[i];
    std::optional<uint64_t> v = AsUint64(d);
    if (!v || *v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::DataLossError(absl::StrCat(where, ": shape dimension ", i, " is ", Describe(d),
                                              ", expected an integer from 0 to 2^63-1"));
    }
    t.shape.push_back(static_cast<int64_t>(*v));
  }
  std::optional<int64_t> nbytes = CheckedByteCount(t.shape, t.dtype);
  if (!nbytes) {
    return absl::DataLossError(absl::StrCat(where, ": shape ", ShapeText(t.shape), " of ", dtype,
                                            " has more than 2^63-1 bytes"));
  }

  auto off_it = e.find("data_offsets");
  if (off_it == e.end()) {
    return absl::DataLossError(absl::StrCat(where, ": 'data_offsets' missing"));
  }
  std::optional<uint64_t> begin, end;
  if (off_it->is_array() && off_it->size() == 2) {
    begin = AsUint64((*off_it)[0]);
    end = AsUint64((*off_it)[1]);
  }
  if (!begin || !end) {
    return absl::DataLossError(absl::StrCat(where, ": 'data_offsets' is ", Quoted(off_it->dump()),
                                            ", expected [begin, end] with integers >= 0"));
  }
  t.begin = *begin;
  t.end = *end;
  std::string offsets = absl::StrCat("data_offsets [", t.begin, ", ", t.end, "]");
  if (t.end < t.begin) {
    return absl::DataLossError(absl::StrCat(where, ": ", offsets, " end before they begin"));
  }
  if (t.end > data_size) {
    return absl::DataLossError(absl::StrCat(where, ": ", offsets, " run past the ", data_size,
                                            "-byte data section (truncated file?)"));
  }
  if (t.end - t.begin != static_cast<uint64_t>(*nbytes)) {
    return absl::DataLossError(absl::StrCat(where, ": ", offsets, " hold ", t.end - t.begin,
                                            " bytes but shape ", ShapeText(t.shape), " of ", dtype,
                                            " needs ", *nbytes));
  }
  return t;
}

// Parses and validates the JSON header of a file whose data section (after
// the header) is `data_size` bytes. Returns the tensors in data order; their
// byte ranges tile the data section exactly, as the format requires.
absl::StatusOr<std::vector<TensorEntry>> ParseHeader(absl::string_view text, uint64_t data_size,
                                                     absl::string_view source) {
  json header;
  std::vector<std::string> keys;
  absl::Status s = ParseCheckpointJson(text, absl::StrCat(source, ": header"), &header, &keys);
  if (!s.ok()) return s;
  if (!header.is_object()) {
    return absl::DataLossError(
        absl::StrCat(source, ": header is ", Describe(header), ", expected a JSON object"));
  }
  std::vector<TensorEntry> entries;
  entries.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string& name = keys[i];
    const json& value = header.at(name);
    if (name == "__metadata__") {
      if (!value.is_object()) {
        return absl::DataLossError(absl::StrCat(source, ": __metadata__ is ", Describe(value),
                                                ", expected an object of strings"));
      }
      for (const auto& item : value.items()) {
        if (!item.value().is_string()) {
          return absl::DataLossError(absl::StrCat(source, ": __metadata__ key ", Quoted(item.key()),
                                                  " is ", Describe(item.value()),
                                                  ", expected a string"));
        }
      }
      continue;
    }
    absl::StatusOr<TensorEntry> entry = ParseEntry(name, value, data_size, source);
    if (!entry.ok()) return entry.status();
    entry->header_index = i;
    entries.push_back(*std::move(entry));
  }
  std::sort(entries.begin(), entries.end(), [](const TensorEntry& a, const TensorEntry& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.header_index < b.header_index;
  });
  uint64_t covered = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const TensorEntry& t = entries[i];
    if (t.begin < covered) {
      return absl::DataLossError(absl::StrCat(source, ": tensors ", Quoted(entries[i - 1].name),
                                              " and ", Quoted(t.name), " overlap (data bytes ",
                                              t.begin, " to ", covered, ")"));
    }
    if (t.begin > covered) {
      return absl::DataLossError(absl::StrCat(source, ": data bytes ", covered, " to ", t.begin,
                                              " before tensor ", Quoted(t.name),
                                              " belong to no tensor"));
    }
    covered = t.end;
  }
  if (covered != data_size) {
    return absl::DataLossError(absl::StrCat(source, ": the last ", data_size - covered,
                                            " bytes of the file belong to no tensor"));
  }
  return entries;
}

// Reads `n` bytes at `offset` of the input into `out`.
using ReadAtFn = std::function<absl::Status(uint64_t offset, uint64_t n, char* out)>;

// The reader shared by files and in-memory buffers: header first, validated
// against `file_size`, then each tensor's bytes straight into its RawTensor.
absl::StatusOr<std::vector<RawTensor>> ReadTensors(uint64_t file_size, const ReadAtFn& read_at,
                                                   absl::string_view source,
                                                   const SafetensorsReadOptions& options) {
  if (file_size < 8) {
    return absl::DataLossError(absl::StrCat(
        source, ": ", file_size, " bytes is too short for a safetensors file (needs at least 8)"));
  }
  unsigned char len[8];
  absl::Status s = read_at(0, 8, reinterpret_cast<char*>(len));
  if (!s.ok()) return s;
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(len[i]) << (8 * i);
  if (n > file_size - 8) {
    return absl::DataLossError(absl::StrCat(source, ": header length ", n,
                                            " exceeds the file size ", file_size,
                                            " (truncated file, or not a safetensors file)"));
  }
  if (n > kMaxSafetensorsHeaderBytes) {
    return absl::DataLossError(absl::StrCat(source, ": header length ", n, " is over the ",
                                            kMaxSafetensorsHeaderBytes, "-byte limit"));
  }
  std::string header(n, '\0');
  s = read_at(8, n, header.data());
  if (!s.ok()) return s;
  uint64_t data_start = 8 + n;
  absl::StatusOr<std::vector<TensorEntry>> entries =
      ParseHeader(header, file_size - data_start, source);
  if (!entries.ok()) return entries.status();

  std::vector<RawTensor> out;
  out.reserve(entries->size());
  for (TensorEntry& e : *entries) {
    RawTensor t;
    t.name = std::move(e.name);
    t.dtype = e.dtype;
    t.shape = std::move(e.shape);
    t.bytes.resize(e.end - e.begin);
    s = read_at(data_start + e.begin, e.end - e.begin, t.bytes.data());
    if (!s.ok()) return s;
    if (options.convert_to.has_value() && *options.convert_to != t.dtype) {
      absl::StatusOr<RawTensor> converted = ConvertDType(t, *options.convert_to);
      if (!converted.ok()) return converted.status();
      t = *std::move(converted);
    }
    out.push_back(std::move(t));
  }
  return out;
}

class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  // Closes now and reports the error close() may carry for buffered writes.
  int Close() {
    int r = ::close(fd_);
    fd_ = -1;
    return r;
  }

 private:
  int fd_;
};

absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    size_t chunk = std::min<size_t>(data.size(), size_t{1} << 30);
    ssize_t w = ::write(fd, data.data(), chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("cannot write '", path, "': ", ErrnoText(errno)));
    }
    data.remove_prefix(static_cast<size_t>(w));
  }
  return absl::OkStatus();
}

uint32_t LoadU32(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(b[0]) | static_cast<uint32_t>(b[1]) << 8 |
         static_cast<uint32_t>(b[2]) << 16 | static_cast<uint32_t>(b[3]) << 24;
}

uint16_t LoadU16(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>(b[0] | b[1] << 8);
}

void StoreU32(uint32_t v, char* p) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}

void StoreU16(uint16_t v, char* p) {
  p[0] = static_cast<char>(v);
  p[1] = static_cast<char>(v >> 8);
}

// Element-wise conversion through float32 bit patterns.
template <typename Load, typename Store>
void ConvertElements(const char* in, int64_t in_size, char* out, int64_t out_size, int64_t n,
                     Load load, Store store) {
  for (int64_t i = 0; i < n; ++i) store(load(in + i * in_size), out + i * out_size);
}

template <typename Load>
void ConvertTo(const char* in, int64_t in_size, char* out, int64_t n, RawDType to, Load load) {
  switch (to) {
    case RawDType::kFloat32:
      ConvertElements(in, in_size, out, 4, n, load, [](uint32_t f, char* p) { StoreU32(f, p); });
      break;
    case RawDType::kBFloat16:
      ConvertElements(in, in_size, out, 2, n, load,
                      [](uint32_t f, char* p) { StoreU16(FloatBitsToBFloat16Bits(f), p); });
      break;
    case RawDType::kFloat16:
      ConvertElements(in, in_size, out, 2, n, load,
                      [](uint32_t f, char* p) { StoreU16(FloatBitsToHalfBits(f), p); });
      break;
  }
}

}  // namespace

absl::Status WriteFileAtomically(const std::string& path,
                                 const std::vector<absl::string_view>& pieces) {
  std::string tmp = path + ".tmp";
  absl::Status s;
  {
    ScopedFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) {
      return absl::InternalError(absl::StrCat("cannot create '", tmp, "': ", ErrnoText(errno)));
    }
    for (absl::string_view piece : pieces) {
      s = WriteAll(fd.get(), piece, tmp);
      if (!s.ok()) break;
    }
    if (s.ok() && ::fsync(fd.get()) != 0) {
      s = absl::InternalError(absl::StrCat("cannot sync '", tmp, "': ", ErrnoText(errno)));
    }
    if (fd.Close() != 0 && s.ok()) {
      s = absl::InternalError(absl::StrCat("cannot close '", tmp, "': ", ErrnoText(errno)));
    }
  }
  if (s.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) {
    s = absl::InternalError(
        absl::StrCat("cannot rename '", tmp, "' to '", path, "': ", ErrnoText(errno)));
  }
  if (!s.ok()) std::remove(tmp.c_str());
  return s;
}

absl::Status ParseCheckpointJson(absl::string_view text, absl::string_view source, json* out,
                                 std::vector<std::string>* top_level_keys) {
  if (!NestingWithin(text, kMaxJsonDepth)) {
    return absl::DataLossError(
        absl::StrCat(source, ": JSON nested deeper than ", kMaxJsonDepth, " levels"));
  }
  std::vector<std::unordered_set<std::string>> open_objects;  // keys seen so far in each
  std::string duplicate;
  bool has_duplicate = false;
  std::vector<std::string> keys;
  auto callback = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key: {
        if (open_objects.empty() || !parsed.is_string()) break;
        const std::string& key = parsed.get_ref<const std::string&>();
        if (!open_objects.back().insert(key).second && !has_duplicate) {
          has_duplicate = true;
          duplicate = key;
        }
        if (open_objects.size() == 1) keys.push_back(key);
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    *out = json::parse(text.data(), text.data() + text.size(), callback,
                       /*allow_exceptions=*/true);
  } catch (const json::exception& e) {
    std::string what = e.what();
    constexpr size_t kMax = 240;
    if (what.size() > kMax) what = what.substr(0, kMax) + "...";
    return absl::DataLossError(absl::StrCat(source, ": not valid JSON: ", what));
  }
  if (has_duplicate) {
    return absl::DataLossError(
        absl::StrCat(source, ": key ", Quoted(duplicate), " appears more than once"));
  }
  if (top_level_keys != nullptr) *top_level_keys = std::move(keys);
  return absl::OkStatus();
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<RawTensor>& tensors) {
  std::vector<const RawTensor*> pointers;
  pointers.reserve(tensors.size());
  for (const RawTensor& t : tensors) pointers.push_back(&t);
  return WriteSafetensorsSubset(path, pointers);
}

absl::Status WriteSafetensorsSubset(const std::string& path,
                                    const std::vector<const RawTensor*>& tensors) {
  std::unordered_set<std::string_view> names;
  std::string header = R"({"__metadata__":{"format":"pt"})";
  uint64_t offset = 0;
  for (const RawTensor* tensor : tensors) {
    const RawTensor& t = *tensor;
    if (t.name.empty() || t.name == "__metadata__") {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor name ", Quoted(t.name), " is reserved; rename the tensor"));
    }
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor ", Quoted(t.name), " is given more than once"));
    }
    absl::Status s = CheckTensorBytes(t, path);
    if (!s.ok()) return s;
    std::string quoted;
    try {
      quoted = json(t.name).dump();
    } catch (const json::exception&) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor name ", Quoted(t.name), " is not valid UTF-8"));
    }
    absl::StrAppend(&header, ",", quoted, R"(:{"dtype":")", DTypeName(t.dtype), R"(","shape":[)",
                    absl::StrJoin(t.shape, ","), R"(],"data_offsets":[)", offset, ",",
                    offset + t.bytes.size(), "]}");
    offset += t.bytes.size();
  }
  header.push_back('}');
  // Pad with spaces (as the reference writer does) so the data starts 8-byte aligned.
  while ((8 + header.size()) % 8 != 0) header.push_back(' ');
  if (header.size() > kMaxSafetensorsHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": header would be ", header.size(), " bytes, over the ", kMaxSafetensorsHeaderBytes,
        "-byte limit of readers; split the tensors over shards"));
  }
  uint64_t n = header.size();
  char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>(n >> (8 * i));
  std::vector<absl::string_view> pieces;
  pieces.reserve(tensors.size() + 2);
  pieces.emplace_back(len, 8);
  pieces.emplace_back(header);
  for (const RawTensor* t : tensors) pieces.emplace_back(t->bytes);
  return WriteFileAtomically(path, pieces);
}

absl::StatusOr<std::vector<RawTensor>> ReadSafetensors(const std::string& path,
                                                       const SafetensorsReadOptions& options) {
  // O_NONBLOCK so that opening a FIFO by mistake cannot hang; it does not
  // affect reads of regular files.
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) {
    int err = errno;
    std::string msg = absl::StrCat("cannot open '", path, "': ", ErrnoText(err));
    if (err == ENOENT) return absl::NotFoundError(msg);
    if (err == EACCES) return absl::PermissionDeniedError(msg);
    return absl::InternalError(msg);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return absl::InternalError(absl::StrCat("cannot stat '", path, "': ", ErrnoText(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is not a regular file"));
  }
  ReadAtFn read_at = [&](uint64_t offset, uint64_t n, char* out) -> absl::Status {
    while (n > 0) {
      size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, uint64_t{1} << 30));
      ssize_t r = ::pread(fd.get(), out, chunk, static_cast<off_t>(offset));
      if (r < 0) {
        if (errno == EINTR) continue;
        return absl::InternalError(absl::StrCat("cannot read '", path, "': ", ErrnoText(errno)));
      }
      if (r == 0) {
        return absl::DataLossError(
            absl::StrCat(path, ": file ended early (was it truncated while being read?)"));
      }
      out += r;
      n -= static_cast<uint64_t>(r);
      offset += static_cast<uint64_t>(r);
    }
    return absl::OkStatus();
  };
  return ReadTensors(static_cast<uint64_t>(st.st_size), read_at, path, options);
}

absl::StatusOr<std::vector<RawTensor>> ParseSafetensors(absl::string_view file_bytes,
                                                        absl::string_view source,
                                                        const SafetensorsReadOptions& options) {
  ReadAtFn read_at = [&](uint64_t offset, uint64_t n, char* out) -> absl::Status {
    // ReadTensors only asks for ranges it has checked against the size.
    std::copy_n(file_bytes.data() + offset, n, out);
    return absl::OkStatus();
  };
  return ReadTensors(file_bytes.size(), read_at, source, options);
}

absl::StatusOr<RawTensor> ConvertDType(const RawTensor& tensor, RawDType to) {
  absl::Status s = CheckTensorBytes(tensor, "ConvertDType");
  if (!s.ok()) return s;
  RawTensor out;
  out.name = tensor.name;
  out.dtype = to;
  out.shape = tensor.shape;
  if (tensor.dtype == to) {
    out.bytes = tensor.bytes;
    return out;
  }
  int64_t n = static_cast<int64_t>(tensor.bytes.size()) / DTypeSize(tensor.dtype);
  out.bytes.resize(static_cast<size_t>(n * DTypeSize(to)));
  const char* in = tensor.bytes.data();
  char* dst = out.bytes.data();
  switch (tensor.dtype) {
    case RawDType::kFloat32:
      ConvertTo(in, 4, dst, n, to, [](const char* p) { return LoadU32(p); });
      break;
    case RawDType::kBFloat16:
      ConvertTo(in, 2, dst, n, to,
                [](const char* p) { return static_cast<uint32_t>(LoadU16(p)) << 16; });
      break;
    case RawDType::kFloat16:
      ConvertTo(in, 2, dst, n, to, [](const char* p) { return HalfBitsToFloatBits(LoadU16(p)); });
      break;
  }
  return out;
}

}  // namespace rlpost
