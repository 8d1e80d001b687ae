// tests/tool_runner.h — running the built tools from a test as a user would (from the
// repo root, build/bin/...): the tools' paths, a scratch directory, a command runner
// capturing exit code, stdout and stderr, and the check of a usage error (exit 2, one stderr
// line).
#pragma once
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/skip.h"

namespace cg::testing {

namespace fs = std::filesystem;

inline const std::string kTrain = "build/bin/train";
inline const std::string kFinetune = "build/bin/finetune";

// true when train and finetune are built; else a visible skip (tests/skip.h) and false.
inline bool have_tools() {
  if (fs::exists(kTrain) && fs::exists(kFinetune)) return true;
  return skip(SkipKind::Data, kTrain + " / " + kFinetune + " not found (run the tests from the repo root after make)");
}

struct Run {
  int code = -1;
  std::string out, err;
};

inline std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// A scratch directory removed at the end of its scope.
struct TempDir {
  fs::path path;
  TempDir() {
    static int n = 0;
    path = fs::temp_directory_path() / ("cg_test_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

inline Run run(const std::string& bin, const std::vector<std::string>& args) {
  TempDir d;
  std::string cmd = quote(bin);
  for (const auto& a : args) cmd += " " + quote(a);
  cmd += " >" + quote(d.file("out")) + " 2>" + quote(d.file("err")) + " </dev/null";
  const int st = std::system(cmd.c_str());
  Run r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = slurp(d.path / "out");
  r.err = slurp(d.path / "err");
  return r;
}

// Runs bin in the background; once `watch` has at least min_lines lines (a metrics file)
// sends it `sig`, then waits. Returns its exit code (128 + signal when killed), stdout, stderr.
inline Run run_interrupted(const std::string& bin, const std::vector<std::string>& args, const std::string& watch,
                           size_t min_lines, int sig) {
  TempDir d;
  const std::string out = d.file("out"), err = d.file("err");
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (!std::freopen(out.c_str(), "w", stdout) || !std::freopen(err.c_str(), "w", stderr)) std::_Exit(127);
    std::vector<char*> argv{const_cast<char*>(bin.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    std::_Exit(127);
  }
  Run r;
  if (pid < 0) return r;
  for (int i = 0; i < 1200; ++i) {  // up to 120 s
    std::ifstream f(watch);
    size_t n = 0;
    for (std::string line; std::getline(f, line);) ++n;
    if (n >= min_lines) break;
    ::usleep(100000);
  }
  ::kill(pid, sig);
  int st = 0;
  ::waitpid(pid, &st, 0);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

// Files in dir whose name starts with prefix (e.g. left-over "NAME.tmp." temp files).
inline std::vector<std::string> files_starting(const fs::path& dir, const std::string& prefix) {
  std::vector<std::string> r;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(prefix, 0) == 0) r.push_back(e.path().string());
  return r;
}

// Exit code 2, nothing on stdout, exactly one line on stderr naming the tool.
inline void check_usage_error(const Run& r, const std::string& tool, const std::string& needle) {
  INFO("stderr: " << r.err);
  CHECK(r.code == 2);
  CHECK(r.out.empty());
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.rfind(tool + ":", 0) == 0);
  CHECK(r.err.find(needle) != std::string::npos);
}

}  // namespace cg::testing
