// models/io/file_io.cpp — FileReader, memory_reader, read_file_bytes, parse_json_limited,
// write_file_atomic (exclusive temp + fsync + rename), same_file, CheckpointLock.
#include "models/io/file_io.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include "engine/error.h"

namespace cg::models {
namespace fs = std::filesystem;

namespace {

int64_t g_crash_after = -1;

// The temp file of the write in flight and the held lock file, as fixed buffers so a
// signal handler can unlink them without allocating.
char g_temp[4096];
volatile std::sig_atomic_t g_temp_set = 0;
char g_lock[4096];
volatile std::sig_atomic_t g_lock_set = 0;

void set_path(char* buf, volatile std::sig_atomic_t& flag, const std::string& p) {
  flag = 0;
  if (p.size() >= 4096) return;
  std::memcpy(buf, p.c_str(), p.size() + 1);
  flag = 1;
}

std::string dir_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

namespace testing {
void crash_during_next_write(int64_t bytes) { g_crash_after = bytes; }
}  // namespace testing

FileReader::FileReader(const std::string& path) : path_(path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw FormatError(path + ": is a directory, not a file");
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
  if (offset > size_ || n > size_ - offset || std::fseek(f_, static_cast<long>(offset), SEEK_SET) != 0 ||
      std::fread(dst, 1, n, f_) != n)
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

std::vector<uint8_t> read_file_bytes(const std::string& path, uint64_t max_bytes) {
  FileReader f(path);
  if (f.size() > max_bytes)
    throw FormatError(path + ": " + std::to_string(f.size()) + " bytes is more than the " + std::to_string(max_bytes) +
                      "-byte limit for this kind of file");
  std::vector<uint8_t> bytes(static_cast<size_t>(f.size()));
  f.read_at(0, bytes.data(), bytes.size());
  return bytes;
}

nlohmann::json parse_json_limited(const std::string& text, const std::string& what, bool unique_keys) {
  // Bracket depth outside strings, before anything is built.
  int depth = 0;
  bool in_str = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_str) {
      if (c == '\\') ++i;
      else if (c == '"') in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        throw FormatError(what + ": JSON nested more than " + std::to_string(kMaxJsonDepth) + " levels deep (at byte " +
                          std::to_string(i) + ")");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  try {
    if (!unique_keys) return nlohmann::json::parse(text);
    std::vector<std::set<std::string>> keys;  // one set per open object (arrays hold an unused set)
    nlohmann::json::parser_callback_t cb = [&](int, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
      using E = nlohmann::json::parse_event_t;
      if (ev == E::object_start || ev == E::array_start) keys.emplace_back();
      else if (ev == E::object_end || ev == E::array_end) keys.pop_back();
      else if (ev == E::key && !keys.empty()) {
        const std::string& k = parsed.get_ref<const std::string&>();
        if (!keys.back().insert(k).second)
          throw FormatError(what + ": JSON key '" + (k.size() > 80 ? k.substr(0, 80) + "…" : k) + "' appears twice");
      }
      return true;
    };
    return nlohmann::json::parse(text, cb);
  } catch (const nlohmann::json::exception& ex) {
    throw FormatError(what + ": bad JSON: " + ex.what());
  }
}

void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::error_code ec;
  if (fs::exists(path, ec) && !fs::is_regular_file(path, ec))
    throw FormatError(path + ": is not a regular file; refusing to replace it");
  std::string tmpl = path + ".tmp.XXXXXX";
  const int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);  // O_CREAT|O_EXCL: never through a symlink
  if (fd < 0) throw FormatError(path + ": cannot create a temp file beside it: " + std::strerror(errno));
  const std::string tmp = tmpl;
  set_path(g_temp, g_temp_set, tmp);
  auto fail = [&](const std::string& what) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    g_temp_set = 0;
    throw FormatError(path + ": " + what + ": " + std::strerror(err));
  };
  if (::fchmod(fd, 0644) != 0) fail("cannot set the temp file's mode");
  size_t todo = bytes.size();
  const int64_t crash = g_crash_after;
  g_crash_after = -1;
  if (crash >= 0 && static_cast<uint64_t>(crash) < todo) todo = static_cast<size_t>(crash);
  size_t done = 0;
  while (done < todo) {
    const ssize_t w = ::write(fd, bytes.data() + done, todo - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("write failed");
    }
    done += static_cast<size_t>(w);
  }
  if (crash >= 0) {  // the simulated crash: the bytes so far reach the disk, then the process dies
    ::fsync(fd);
    std::_Exit(testing::kCrashExitCode);
  }
  if (::fsync(fd) != 0) fail("fsync failed");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    g_temp_set = 0;
    throw FormatError(path + ": close failed: " + std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    g_temp_set = 0;
    throw FormatError(path + ": cannot rename the temp file onto it: " + std::strerror(err));
  }
  g_temp_set = 0;
  const int dfd = ::open(dir_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);  // make the rename durable
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void remove_temp_in_flight() noexcept {
  if (g_temp_set) ::unlink(g_temp);
}

void remove_stale_temps(const std::string& path) {
  const fs::path p(path);
  const std::string prefix = p.filename().string() + ".tmp.";
  std::error_code ec;
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() == prefix.size() + 6 && name.compare(0, prefix.size(), prefix) == 0 &&
        it->symlink_status(ec).type() == fs::file_type::regular) {
      std::error_code rm;
      fs::remove(it->path(), rm);
    }
  }
}

uint64_t fnv1a64(const void* data, size_t n, uint64_t h) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

bool same_file(const std::string& a, const std::string& b) {
  if (a.empty() || b.empty()) return false;
  std::error_code ec;
  if (fs::exists(a, ec) && fs::exists(b, ec)) {
    const bool eq = fs::equivalent(a, b, ec);
    if (!ec) return eq;
  }
  const fs::path ca = fs::weakly_canonical(fs::absolute(a, ec), ec);
  const fs::path cb = fs::weakly_canonical(fs::absolute(b, ec), ec);
  return ca == cb;
}

CheckpointLock::CheckpointLock(const std::string& path) : lock_path_(path + ".lock") {
  fd_ = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd_ < 0) throw FormatError(path + ": cannot create its lock file: " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw FormatError(path + ": another run is using this checkpoint (" + lock_path_ + " is locked)");
    throw FormatError(path + ": cannot lock " + lock_path_ + ": " + std::strerror(err));
  }
  set_path(g_lock, g_lock_set, lock_path_);
}

CheckpointLock::~CheckpointLock() {
  if (fd_ < 0) return;
  g_lock_set = 0;
  ::unlink(lock_path_.c_str());
  ::close(fd_);
}

void CheckpointLock::remove_on_signal() noexcept {
  if (g_lock_set) ::unlink(g_lock);
}

}  // namespace cg::models
