// tests/skip.cpp — the skip record of tests/skip.h: a doctest listener that knows the
// current test case, counts the cases that skipped and prints the total at the end.
#include "tests/skip.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <set>

namespace cg::testing {
namespace {

std::string g_current;
std::set<std::string> g_skipped;  // cases that called skip(); counted at their end unless they failed
int g_count = 0;

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && (std::strcmp(ci, "true") == 0 || std::strcmp(ci, "1") == 0);
}

struct SkipListener : doctest::IReporter {
  explicit SkipListener(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {
    std::cout << "[skip] " << g_count << " test case(s) skipped" << std::endl;
  }
  void test_case_start(const doctest::TestCaseData& d) override { g_current = d.m_name; }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats& st) override {
    if (g_skipped.count(g_current) && st.testCaseSuccess) ++g_count;
  }
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

DOCTEST_REGISTER_LISTENER("skips", 1, SkipListener);

bool skip(SkipKind kind, const std::string& why) {
  if (kind == SkipKind::Data && in_ci()) {
    FAIL_CHECK("CI=true and " << why << ": CI must provide it (a skip would read as a pass)");
    return false;
  }
  if (g_skipped.insert(g_current).second) std::cout << "[skip] " << g_current << ": " << why << std::endl;
  MESSAGE("skipped: " << why);
  return false;
}

bool have_file(const std::string& path) {
  if (std::filesystem::exists(path)) return true;
  return skip(SkipKind::Data, path + " absent (run from the repo root with ../shared/data beside it)");
}

}  // namespace cg::testing
