// models/train/progress.cpp — the progress bar and the metrics file.
#include "models/train/progress.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/error.h"
#include "models/io/file_io.h"

namespace cg::models {

Progress::Progress(int64_t total, int64_t every)
    : total_(total),
      every_(every < 1 ? 1 : every),
      tty_(isatty(fileno(stderr)) != 0),
      start_(std::chrono::steady_clock::now()) {}

void Progress::update(int64_t step, double loss, double tok_s, const std::string& extra) {
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double eta = step > 0 ? el / static_cast<double>(step) * static_cast<double>(total_ - step) : 0.0;
  if (tty_) {
    const int width = 24;
    const int fill = total_ > 0 ? static_cast<int>(width * step / total_) : 0;
    std::string bar(static_cast<size_t>(fill), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r[%s] %lld/%lld  loss %.4f  %.0f tok/s  ETA %.0fs %s\033[K", bar.c_str(),
                 static_cast<long long>(step), static_cast<long long>(total_), loss, tok_s, eta, extra.c_str());
    bar_shown_ = true;
  } else if (step % every_ == 0 || step == total_ || step == 1) {
    std::fprintf(stderr, "step %lld/%lld  loss %.4f  %.0f tok/s  ETA %.0fs %s\n", static_cast<long long>(step),
                 static_cast<long long>(total_), loss, tok_s, eta, extra.c_str());
  }
  std::fflush(stderr);
}

void Progress::note(const std::string& line) {
  if (bar_shown_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "%s\n", line.c_str());
  bar_shown_ = false;
}

void Progress::finish() {
  if (bar_shown_) std::fprintf(stderr, "\n");
  bar_shown_ = false;
}

MetricsFile::MetricsFile(const std::string& path, int64_t resumed_at) : path_(path) {
  if (path.empty()) return;
  std::error_code ec;
  if (resumed_at >= 0 && std::filesystem::is_regular_file(path, ec)) {
    std::ifstream in(path);
    std::string keep;
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      const nlohmann::json row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (row.is_object() && row.contains("step") && row["step"].is_number_integer() &&
          row["step"].get<int64_t>() <= resumed_at)
        keep += line + "\n";
    }
    write_file_atomic(path, std::vector<uint8_t>(keep.begin(), keep.end()));
    f_ = std::fopen(path.c_str(), "a");
  } else {
    f_ = std::fopen(path.c_str(), "w");
  }
  if (!f_) throw FormatError("--metrics " + path + ": cannot write: " + std::strerror(errno));
}

MetricsFile::~MetricsFile() {
  if (f_) std::fclose(f_);
}

void MetricsFile::write(const nlohmann::json& row) {
  if (!f_) return;
  const std::string s = row.dump() + "\n";
  if (std::fwrite(s.data(), 1, s.size(), f_) != s.size() || std::fflush(f_) != 0)
    throw FormatError("--metrics " + path_ + ": write failed: " + std::strerror(errno));
}

}  // namespace cg::models
