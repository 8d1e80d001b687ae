// models/io/file_io.h — the small file helpers the format readers/writers share: random
// access reads with clear errors, whole-file reads, and atomic writes (temp + rename).
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

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

std::vector<uint8_t> read_file_bytes(const std::string& path);
// Writes bytes to path + ".tmp" and renames it onto path; on error the temp file is
// removed and path is untouched.
void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes);

}  // namespace cg::models
