// models/io/file_io.h — the small file helpers the format readers/writers share: random
// access reads with clear errors, whole-file reads with a size cap, JSON parsing with depth
// and size limits (for every file that comes from outside), and safe writes: a temp file
// created exclusively beside the target (never following a symlink), fsync'd, renamed onto
// it, the directory fsync'd; output paths that would overwrite an input refused; an
// advisory lock so two processes cannot share one checkpoint path.
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace cg::models {

// Copies n bytes at `offset` of a source into dst; throws FormatError past its end.
using ReadAt = std::function<void(uint64_t offset, void* dst, size_t n)>;

// An open regular file; every failure is a FormatError naming the path.
class FileReader {
 public:
  explicit FileReader(const std::string& path);
  ~FileReader();
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;
  uint64_t size() const { return size_; }
  void read_at(uint64_t offset, void* dst, size_t n);
  ReadAt reader() {
    return [this](uint64_t offset, void* dst, size_t n) { read_at(offset, dst, n); };
  }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  uint64_t size_ = 0;
};

// A ReadAt over a buffer held in memory (`what` names it in messages).
ReadAt memory_reader(const uint8_t* data, size_t size, const std::string& what);

// The whole file; a FormatError when it is larger than max_bytes.
std::vector<uint8_t> read_file_bytes(const std::string& path, uint64_t max_bytes = uint64_t{1} << 40);

// JSON from outside (headers, config.json, task files, adapter configs): at most
// kMaxJsonDepth levels of nesting (checked before nlohmann builds anything, so deep input
// can neither overflow the stack nor take gigabytes) and, with unique_keys, no key twice in
// one object (nlohmann would keep the last). Errors are one FormatError line naming `what`;
// no part of the input is echoed back beyond a short quoted key.
constexpr int kMaxJsonDepth = 64;
nlohmann::json parse_json_limited(const std::string& text, const std::string& what, bool unique_keys = false);

// Writes bytes to path atomically and durably: a temp file path.tmp.XXXXXX created with
// O_EXCL beside it (so a pre-existing file or symlink of that name is never written
// through), fsync, rename onto path, fsync of the directory. On error the temp file is
// removed, path is untouched and a FormatError names what failed. While the write is in
// flight the temp path is registered so remove_temp_in_flight() (async-signal-safe, for
// a second Ctrl-C) can delete it.
void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes);
// Deletes the temp file of a write in progress, if any. Async-signal-safe.
void remove_temp_in_flight() noexcept;
// Removes temp files path.tmp.XXXXXX left by a process killed mid-write (call only as
// path's sole writer, e.g. holding its CheckpointLock).
void remove_stale_temps(const std::string& path);

// FNV-1a (64-bit) over bytes, continuing from h: a checkpoint's fingerprint of the base
// weights and the training tokens (not cryptographic; it tells runs apart).
constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;
uint64_t fnv1a64(const void* data, size_t n, uint64_t h = kFnvOffset);

// True when a and b name the same file: std::filesystem::equivalent when both exist (hard
// links, symlinks), else their weakly canonical forms (canonical parents) compare equal.
bool same_file(const std::string& a, const std::string& b);

// An exclusive advisory lock (flock on path.lock) held for the object's lifetime, so two
// runs cannot write one checkpoint; the lock file is removed on release. Throws a
// FormatError naming the path when another process holds it.
class CheckpointLock {
 public:
  CheckpointLock() = default;
  explicit CheckpointLock(const std::string& path);
  ~CheckpointLock();
  CheckpointLock(const CheckpointLock&) = delete;
  CheckpointLock& operator=(const CheckpointLock&) = delete;
  // Async-signal-safe: unlink the lock file (the process is about to _exit).
  static void remove_on_signal() noexcept;

 private:
  int fd_ = -1;
  std::string lock_path_;
};

namespace testing {
// Test hook: the next write_file_atomic writes only `bytes` bytes of its temp file and then
// ends the process with std::_Exit(kCrashExitCode), as a crash mid-save would. < 0: off.
constexpr int kCrashExitCode = 86;
void crash_during_next_write(int64_t bytes);
}  // namespace testing

}  // namespace cg::models
