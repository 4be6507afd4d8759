// File I/O with the guarantees veil promises: bounded reads of untrusted files and atomic writes
// (temporary file + fsync + rename), so a failing command never leaves half a file behind.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace veil {

// Reads a whole file; throws IoError if it cannot be read and MalformedInput if it is larger
// than max_bytes (checked before allocating).
std::vector<uint8_t> read_file(const std::filesystem::path& path, uint64_t max_bytes);
std::string read_text_file(const std::filesystem::path& path, uint64_t max_bytes);

// Writes all of `bytes` to an open file descriptor, retrying short writes; throws IoError
// naming `what` (e.g. a file another process inherited, which has no path to write atomically).
void write_all(int fd, std::span<const uint8_t> bytes, const std::string& what);
void write_all(int fd, const std::string& text, const std::string& what);

// Writes `bytes` to `path` atomically: a temporary file in the same directory is written,
// flushed to disk and renamed over `path`. On any failure the temporary is removed and
// `path` is untouched; on SIGTERM, SIGINT or SIGHUP too once the process installed
// remove_temporaries_on_signal() (core/temporaries.hpp). The file gets permission bits `mode`
// (0600 for key material: the temporary is created 0600, so it is never readable by others).
void write_file_atomic(const std::filesystem::path& path, std::span<const uint8_t> bytes,
                       unsigned mode = 0644);
void write_file_atomic(const std::filesystem::path& path, const std::string& text);

namespace detail {
// Test hook: write_file_atomic calls it with the temporary's path once the temporary exists and
// is registered for removal on a signal, before writing a byte (a test blocks there to kill a
// writer mid-write deterministically). nullptr (the default) turns it off.
void set_write_hook_for_testing(void (*hook)(const std::filesystem::path& temporary));
}  // namespace detail

}  // namespace veil
