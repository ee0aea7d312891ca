#include "common/weight_chunks.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/crc32c.h"

namespace rlpost {
namespace {

v1::DType ToProto(RawDType d) {
  switch (d) {
    case RawDType::kFloat32: return v1::DTYPE_FLOAT32;
    case RawDType::kBFloat16: return v1::DTYPE_BFLOAT16;
    case RawDType::kFloat16: return v1::DTYPE_FLOAT16;
  }
  return v1::DTYPE_UNSPECIFIED;
}

}  // namespace

std::vector<v1::WeightChunk> ChunkWeights(int64_t version, const std::vector<RawTensor>& tensors,
                                          int64_t chunk_bytes) {
  if (chunk_bytes <= 0) chunk_bytes = 1 << 20;
  std::vector<v1::WeightChunk> out;
  for (const RawTensor& t : tensors) {
    int64_t total = static_cast<int64_t>(t.bytes.size());
    int64_t offset = 0;
    do {
      int64_t n = std::min(chunk_bytes, total - offset);
      v1::WeightChunk c;
      c.set_version(version);
      c.set_tensor_name(t.name);
      c.set_dtype(ToProto(t.dtype));
      for (int64_t d : t.shape) c.add_shape(d);
      c.set_offset(offset);
      c.set_total_bytes(total);
      c.set_data(t.bytes.substr(static_cast<size_t>(offset), static_cast<size_t>(n)));
      c.set_checksum(Crc32c(c.data()));
      c.set_tensor_count(static_cast<int32_t>(tensors.size()));
      out.push_back(std::move(c));
      offset += n;
    } while (offset < total);
  }
  return out;
}

absl::Status WeightAssembler::Add(const v1::WeightChunk& c) {
  const std::string& name = c.tensor_name();
  if (Crc32c(c.data()) != c.checksum()) {
    return absl::DataLossError(absl::StrCat("weight chunk of '", name, "' at offset ",
                                            c.offset(), ": checksum mismatch"));
  }
  if (version_ < 0) {
    version_ = c.version();
    tensor_count_ = c.tensor_count();
  } else if (c.version() != version_) {
    return absl::InvalidArgumentError(absl::StrCat("weight chunk of '", name, "' has version ",
                                                   c.version(), " in a stream of version ",
                                                   version_));
  }
  if (c.dtype() != v1::DTYPE_FLOAT32 && c.dtype() != v1::DTYPE_BFLOAT16 &&
      c.dtype() != v1::DTYPE_FLOAT16) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight chunk of '", name, "': unsupported dtype ", c.dtype()));
  }
  auto it = index_.find(name);
  if (it == index_.end()) {
    if (c.offset() != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight chunk of '", name, "' starts at offset ", c.offset()));
    }
    RawTensor t;
    t.name = name;
    t.dtype = c.dtype() == v1::DTYPE_FLOAT32    ? RawDType::kFloat32
              : c.dtype() == v1::DTYPE_BFLOAT16 ? RawDType::kBFloat16
                                                : RawDType::kFloat16;
    t.shape.assign(c.shape().begin(), c.shape().end());
    if (t.numel() * DTypeSize(t.dtype) != c.total_bytes()) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight chunk of '", name, "': shape and total_bytes disagree"));
    }
    t.bytes.reserve(static_cast<size_t>(c.total_bytes()));
    index_[name] = tensors_.size();
    expected_bytes_[name] = c.total_bytes();
    tensors_.push_back(std::move(t));
    it = index_.find(name);
  }
  RawTensor& t = tensors_[it->second];
  if (c.offset() != static_cast<int64_t>(t.bytes.size())) {
    return absl::InvalidArgumentError(absl::StrCat("weight chunk of '", name, "' at offset ",
                                                   c.offset(), ", expected offset ",
                                                   t.bytes.size()));
  }
  if (static_cast<int64_t>(t.bytes.size() + c.data().size()) > expected_bytes_[name]) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight chunk of '", name, "' overruns the tensor"));
  }
  t.bytes += c.data();
  bytes_ += static_cast<int64_t>(c.data().size());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RawTensor>> WeightAssembler::Finish() {
  if (version_ < 0) return absl::InvalidArgumentError("weight stream carried no chunks");
  if (static_cast<int32_t>(tensors_.size()) != tensor_count_) {
    return absl::InvalidArgumentError(absl::StrCat("weight stream of version ", version_,
                                                   " carried ", tensors_.size(), " of ",
                                                   tensor_count_, " tensors"));
  }
  for (const RawTensor& t : tensors_) {
    if (static_cast<int64_t>(t.bytes.size()) != expected_bytes_[t.name]) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' incomplete: ",
                                                     t.bytes.size(), " of ",
                                                     expected_bytes_[t.name], " bytes"));
    }
  }
  return std::move(tensors_);
}

}  // namespace rlpost
