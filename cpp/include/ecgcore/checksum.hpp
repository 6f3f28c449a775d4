// CRC-32C (Castagnoli), the checksum of TFRecord framing (and iSCSI, ext4). Hardware instruction on
// x86-64 (SSE4.2, part of the x86-64-v2 baseline), table-driven elsewhere.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ecgcore {

uint32_t crc32c(const uint8_t* data, size_t n, uint32_t crc = 0);

// TFRecord's masked CRC: rotate right by 15 and add 0xa282ead8.
inline uint32_t masked_crc32c(const uint8_t* data, size_t n) {
  const uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

}  // namespace ecgcore
