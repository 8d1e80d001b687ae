// tools/common/cli.h — the plumbing every tool shares: run a tool's main body so that
// bad flags and bad input give one clear line on stderr and exit code 2, never a stack
// trace; flag checks that read as sentences ("--rank must be ≥ 1, got 0"); an unknown
// flag named with the closest real one; and small helpers for reporting.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>

namespace cg::tools {

constexpr int kExitUsage = 2;
constexpr int kExitNonFinite = 3;  // a NaN/inf loss or gradient stopped the run

// Parses argv with `app` and runs `body`; maps CLI11 errors, cg::Error and std::exception
// to "TOOL: message" on stderr and exit code 2 (usage/input) or 1 (internal). A flag the
// app does not have is reported before anything else ("unknown flag --modle; did you
// mean --model?"), so a typo never shows up as a missing required flag.
int run_tool(CLI::App& app, int argc, char** argv, const std::function<int()>& body);

// CLI11 checks with one-line messages: an integer in [lo, hi]; a finite real in [lo, hi]
// (NaN and inf refused).
CLI::Validator int_range(int64_t lo, int64_t hi);
CLI::Validator real_range(double lo, double hi);

}  // namespace cg::tools
