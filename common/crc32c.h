#pragma once
// CRC-32C (Castagnoli), the checksum carried by every weight chunk.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace rlpost {

// Extends `crc` (0 for a fresh checksum) over `data`.
uint32_t Crc32c(const void* data, size_t size, uint32_t crc = 0);
inline uint32_t Crc32c(std::string_view data) { return Crc32c(data.data(), data.size()); }

}  // namespace rlpost
