// models/io/file_io.cpp — FileReader, memory_reader, read_file_bytes, write_file_atomic.
#include "models/io/file_io.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>

#include "engine/error.h"

namespace cg::models {

FileReader::FileReader(const std::string& path) : path_(path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw FormatError(path + ": is a directory, not a file");
  f_ = std::fopen(path.c_str(), "rb");
  if (!f_) throw FormatError(path + ": cannot open: " + std::strerror(errno));
  long size = -1;
  if (std::fseek(f_, 0, SEEK_END) == 0) size = std::ftell(f_);
  if (size < 0) {
    std::fclose(f_);
    throw FormatError(path + ": cannot determine its size (not a regular file?)");
  }
  size_ = static_cast<uint64_t>(size);
}

FileReader::~FileReader() {
  if (f_) std::fclose(f_);
}

void FileReader::read_at(uint64_t offset, void* dst, size_t n) {
  if (offset > size_ || n > size_ - offset ||
      std::fseek(f_, static_cast<long>(offset), SEEK_SET) != 0 || std::fread(dst, 1, n, f_) != n)
    throw FormatError(path_ + ": read of " + std::to_string(n) + " bytes at offset " + std::to_string(offset) +
                      " failed (file truncated or changed while reading?)");
}

ReadAt memory_reader(const uint8_t* data, size_t size, const std::string& what) {
  return [data, size, what](uint64_t offset, void* dst, size_t n) {
    if (offset > size || n > size - offset)
      throw FormatError(what + ": read of " + std::to_string(n) + " bytes at offset " + std::to_string(offset) +
                        " runs past the end (" + std::to_string(size) + " bytes)");
    if (n) std::memcpy(dst, data + offset, n);
  };
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  FileReader f(path);
  std::vector<uint8_t> bytes(static_cast<size_t>(f.size()));
  f.read_at(0, bytes.data(), bytes.size());
  return bytes;
}

void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw FormatError(tmp + ": cannot create: " + std::strerror(errno));
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  ok = (std::fflush(f) == 0) && ok;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw FormatError(tmp + ": write failed: " + std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw FormatError(path + ": cannot rename " + tmp + " onto it: " + std::strerror(err));
  }
}

}  // namespace cg::models
