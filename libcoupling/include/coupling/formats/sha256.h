// SHA-256 digests (OpenSSL's libcrypto), as lowercase hex: checkpoint manifests record one per
// file and verify it on load, so a corrupted or swapped file is named instead of half-loaded.
#pragma once

#include <cstddef>
#include <string>

namespace coupling {

/// SHA-256 of `bytes`, 64 lowercase hex digits.
std::string sha256_hex(const std::string& bytes);
/// SHA-256 of `size` bytes at `data`.
std::string sha256_hex(const void* data, size_t size);

/// SHA-256 of the file at `path`, read in chunks. Throws coupling::IoError if it cannot be read.
std::string sha256_file_hex(const std::string& path);

}  // namespace coupling
