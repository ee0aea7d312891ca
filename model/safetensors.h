#pragma once
// Reading and writing one safetensors file: an 8-byte little-endian header
// length N, N bytes of JSON header (name -> {dtype, shape, data_offsets}, plus
// an optional "__metadata__" object of strings), then the tensor bytes.
// No LibTorch. Layout, dtypes and error rules: docs/checkpoints.md.
//
// Readers treat the file as untrusted: every length, offset and shape is
// checked before use, and a malformed file yields a Status naming the file
// (and the tensor, where there is one), never a crash. Corrupt content gives
// kDataLoss; a well-formed file with a dtype we do not handle gives
// kInvalidArgument; a missing file gives kNotFound.
//
// All functions are thread-compatible: they share no state, so concurrent
// calls are fine as long as they do not write the same path.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/raw_tensor.h"

namespace rlpost {

// Largest JSON header accepted (the limit of the reference implementation).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

struct SafetensorsReadOptions {
  // When set, every tensor is converted to this dtype after reading (see
  // ConvertDType). When unset, tensors keep the dtype stored in the file,
  // which may be kFloat16.
  std::optional<RawDType> convert_to;
};

// Writes `tensors` in order, with header metadata {"format": "pt"} as Hugging
// Face does, data 8-byte aligned. Atomic per file: writes `path`.tmp, syncs,
// then renames. kInvalidArgument (nothing written) if a tensor's byte count
// does not match its shape and dtype, a dimension is negative, a name is
// empty, repeated, "__metadata__" or not UTF-8, or the header would pass
// kMaxSafetensorsHeaderBytes; kInternal on I/O failure.
absl::Status WriteSafetensors(const std::string& path, const std::vector<RawTensor>& tensors);

// WriteSafetensors for tensors held elsewhere, so a caller can write a subset
// (one shard) without copying the bytes. Pointers must not be null.
absl::Status WriteSafetensorsSubset(const std::string& path,
                                    const std::vector<const RawTensor*>& tensors);

// Reads every tensor of the file at `path`, in data order (for files we write,
// the order given to WriteSafetensors). Reads the header, validates it against
// the file size, then reads each tensor's bytes once straight into its
// RawTensor, so peak memory is about the size of the tensors.
absl::StatusOr<std::vector<RawTensor>> ReadSafetensors(const std::string& path,
                                                       const SafetensorsReadOptions& options = {});

// Same as ReadSafetensors for a whole file already in memory; `source` names
// it in error messages.
absl::StatusOr<std::vector<RawTensor>> ParseSafetensors(absl::string_view file_bytes,
                                                        absl::string_view source,
                                                        const SafetensorsReadOptions& options = {});

// Converts `tensor` to dtype `to`. To F32 is exact from every dtype; F32 to
// BF16 or F16 rounds to nearest, ties to even; BF16 <-> F16 goes through F32
// (exact) and so rounds once. NaN stays NaN, +-inf and -0.0 are kept. Same
// dtype returns a copy. kInvalidArgument if the tensor's byte count does not
// match its shape and dtype.
absl::StatusOr<RawTensor> ConvertDType(const RawTensor& tensor, RawDType to);

// Writes the concatenation of `pieces` to `path`.tmp, fsyncs it and renames it
// over `path`, so readers see the old file or the new one, never a mix.
// Removes the temporary file on failure; kInternal naming the path.
absl::Status WriteFileAtomically(const std::string& path,
                                 const std::vector<absl::string_view>& pieces);

// Parses JSON from a checkpoint (a safetensors header, a shard index) as
// untrusted input: besides syntax errors, duplicate object keys and nesting
// deeper than 16 levels are errors (nlohmann::json::parse silently keeps the
// last duplicate). Errors are kDataLoss and start with `source`. When
// `top_level_keys` is not null it receives the keys of a top-level object in
// file order.
absl::Status ParseCheckpointJson(absl::string_view text, absl::string_view source,
                                 nlohmann::json* out,
                                 std::vector<std::string>* top_level_keys = nullptr);

}  // namespace rlpost
