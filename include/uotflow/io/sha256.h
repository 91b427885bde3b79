// SHA-256 of files and byte strings: what every FID record carries to name its feature extractor.
#pragma once

#include <string>

namespace uotflow {

/// Lower-case hex SHA-256 (FIPS 180-4) of `bytes`.
///
///   sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
std::string sha256_hex(const std::string& bytes);

/// SHA-256 of a file's contents; a missing file raises a ConfigError naming it.
std::string sha256_file(const std::string& path);

}  // namespace uotflow
