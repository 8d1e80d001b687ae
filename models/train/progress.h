// models/train/progress.h — training progress: a bar with ETA, loss and tok/s on a
// terminal, plain lines otherwise; and the JSONL metrics file (one object per step).
#pragma once
#include <chrono>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

namespace cg::models {

class Progress {
 public:
  // every: on a non-terminal, print one line every `every` steps (and the last).
  Progress(int64_t total_steps, int64_t every = 10);
  void update(int64_t step, double loss, double tok_s, const std::string& extra = "");
  void finish();
  void note(const std::string& line);  // a line that does not break the bar

 private:
  int64_t total_, every_;
  bool tty_;
  bool bar_shown_ = false;
  std::chrono::steady_clock::time_point start_;
};

// Writes JSON objects, one per line, to a file; no-op when path is empty. resumed_at ≥ 0
// (a resumed run): the rows of steps ≤ resumed_at already in the file are kept and the new
// rows appended (rows of later steps, from a run killed after its last checkpoint, go).
// Every write is checked: a failure (disk full) is a FormatError naming the file.
class MetricsFile {
 public:
  explicit MetricsFile(const std::string& path, int64_t resumed_at = -1);
  ~MetricsFile();
  MetricsFile(const MetricsFile&) = delete;
  MetricsFile& operator=(const MetricsFile&) = delete;
  void write(const nlohmann::json& row);

 private:
  std::FILE* f_ = nullptr;
  std::string path_;
};

}  // namespace cg::models
