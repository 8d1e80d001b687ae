// tests/skip.h — visible skips. A test case that cannot run here (no ../shared/data, no CUDA
// device, tools not built) calls skip() instead of returning silently: the case is recorded as
// skipped ("[skip] CASE: WHY" on stdout, and a closing "[skip] N test case(s) skipped" that
// scripts/run-tests.sh subtracts from doctest's passed count), and under CI=true a missing
// data file fails the case with a line saying why instead (a skip never reads as a pass in CI).
#pragma once
#include <string>

namespace cg::testing {

enum class SkipKind {
  Data,   // ../shared/data or another input file that CI provides: fails under CI=true
  Cuda,   // no CUDA device (CI has none): always a skip
  Other,  // an environment this case does not apply to (e.g. run under an MPI launcher)
};

// Records the current test case as skipped (or, for Data under CI=true, fails it) and
// returns false, so that a case reads `if (!have(...)) return;`.
bool skip(SkipKind kind, const std::string& why);

// true when PATH exists; else skip(Data, "PATH absent ...") and false.
bool have_file(const std::string& path);

}  // namespace cg::testing
