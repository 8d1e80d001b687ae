// tests/test_examples.cpp — runs every example program of the docs tour (build/examples/NAME,
// from the repo root, as docs/ shows them) and checks its exit status and key lines, so the
// examples cannot rot. Skips when not run from the repo root (no examples/ there).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <sys/wait.h>
#include <vector>
#include "tests/skip.h"

namespace {

struct Run {
  int status = -1;
  std::string out;
};

Run run(const std::string& cmd) {
  Run r;
  std::FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// Runs build/examples/NAME; false (with a message) when the repo root is not the cwd.
bool run_example(const std::string& name, Run& r) {
  if (!std::filesystem::exists("examples/" + name + ".cpp")) {
    return cg::testing::skip(cg::testing::SkipKind::Data,
                             "examples/" + name + ".cpp not found (run the tests from the repo root)");
  }
  const std::string bin = "build/examples/" + name;
  REQUIRE_MESSAGE(std::filesystem::exists(bin), bin << " is missing: the Makefile builds every examples/*.cpp");
  r = run("OMP_NUM_THREADS=2 " + bin);
  INFO(bin << " printed:\n" << r.out);
  CHECK(r.status == 0);
  return true;
}

void expect_lines(const Run& r, const std::vector<std::string>& lines) {
  for (const auto& l : lines) {
    INFO("expected a line containing: " << l << "\noutput:\n" << r.out);
    CHECK(r.out.find(l) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("every examples/*.cpp has a test here") {
  if (!std::filesystem::exists("examples")) {
    cg::testing::skip(cg::testing::SkipKind::Data, "no examples/ in the working directory");
    return;
  }
  const std::vector<std::string> known{"tape_tour", "rmsnorm_tour", "chain_tour", "adapter_tour"};
  for (const auto& e : std::filesystem::directory_iterator("examples")) {
    if (e.path().extension() != ".cpp") continue;
    const std::string stem = e.path().stem().string();
    INFO("examples/" << stem << ".cpp has no test case in tests/test_examples.cpp");
    CHECK(std::find(known.begin(), known.end(), stem) != known.end());
  }
}

TEST_CASE("example tape_tour: the tape, its reverse walk, the gradients") {
  Run r;
  if (!run_example("tape_tour", r)) return;
  expect_lines(r, {"#0 matmul(x:[2,3], w:[3,2]*) -> [2,2]", "#1 add([2,2]*, b:[2]*) -> [2,2]",
                   "#2 mul([2,2]*, [2,2]*) -> [2,2]", "#3 mean_all([2,2]*) -> [1]", "tape after backward: 0 nodes",
                   "x.grad() defined: no", "dL/db matches z/2 summed over rows: yes"});
}

TEST_CASE("example rmsnorm_tour: gradcheck passes the derived backward and catches the broken one") {
  Run r;
  if (!run_example("rmsnorm_tour", r)) return;
  expect_lines(r, {"max |difference|  y: < 1e-12  dL/dx: < 1e-12  dL/dw: < 1e-12", "derived backward", "pass",
                   "broken (forgot drs/dx)", "FAIL", "every check came out as expected"});
}

TEST_CASE("example chain_tour: every dL/dWi and dL/dP agree with finite differences") {
  Run r;
  if (!run_example("chain_tour", r)) return;
  expect_lines(r, {"best ((A·B)·C) = 4500;  left (A·B)·C = 4500, right A·(B·C) = 27000", "dL/dP", "dL/dW3",
                   "equals each Wi.grad(): yes", "all gradients agree"});
}

TEST_CASE("example adapter_tour: counts, B = 0 at step 0, merge and unmerge") {
  Run r;
  if (!run_example("adapter_tour", r)) return;
  expect_lines(r, {"lora     r(in+out) + n·r² = 28 + 0·4 = 28; the store holds 28",
                   "moslora  r(in+out) + n·r² = 28 + 1·4 = 32; the store holds 32",
                   "linchain r(in+out) + n·r² = 28 + 3·4 = 40; the store holds 40",
                   "   0  0.000e+00   0.000e+00   0.000e+00   0.000e+00", "every check came out as expected"});
}
