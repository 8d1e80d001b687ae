// tools/common/cli.h — the plumbing every tool shares: run a tool's main body so that
// bad flags and bad input give one clear line on stderr and exit code 2, never a stack
// trace; and small helpers for reporting.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace cg::tools {

constexpr int kExitUsage = 2;

// Parses argv with `app` and runs `body`; maps CLI11 errors, cg::Error and std::exception
// to "TOOL: message" on stderr and exit code 2 (usage/input) or 1 (internal).
int run_tool(CLI::App& app, int argc, char** argv, const std::function<int()>& body);

}  // namespace cg::tools
