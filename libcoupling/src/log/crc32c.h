// CRC-32C (Castagnoli: reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF),
// the checksum of TFRecord framing in TensorBoard event files, and its "masked" form: TFRecord
// stores masked CRCs so that a CRC of data that itself holds CRCs does not degenerate.
// Check values: crc32c("123456789") = 0xE3069283, crc32c(32 zero bytes) = 0x8A9136AA.
#pragma once

#include <cstddef>
#include <cstdint>

namespace coupling::detail {

/// The CRC-32C of `size` bytes at `data`; `crc` continues an earlier one (0 to start).
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);

/// TFRecord's mask of a CRC: rotated right by 15 bits, plus 0xa282ead8 (mod 2^32).
constexpr uint32_t mask_crc32c(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

/// mask_crc32c(crc32c(data, size)): what a TFRecord stores after its length and after its data.
inline uint32_t masked_crc32c(const void* data, size_t size) { return mask_crc32c(crc32c(data, size)); }

}  // namespace coupling::detail
