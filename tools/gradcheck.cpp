// tools/gradcheck.cpp — checks every registered op's gradient against central finite
// differences in float64 and prints one row per case. Exit status 1 if any case fails.
#include <cstdio>

#include "ops/gradcheck.h"
#include "tools/common/cli.h"

int main(int argc, char** argv) {
  CLI::App app{"Finite-difference gradient check of every op (float64, CPU).", "gradcheck"};
  std::string only;
  double tol = 1e-6;
  uint64_t seed = 0;
  bool list = false;
  app.add_option("--op", only, "check only this op (see --list)");
  app.add_option("--tol", tol, "maximum relative error that passes")->capture_default_str();
  app.add_option("--seed", seed, "seed for the random inputs")->capture_default_str();
  app.add_flag("--list", list, "list the registered ops and exit");
  return cg::tools::run_tool(app, argc, argv, [&] {
    const auto& reg = cg::ops::grad_registry();
    if (list) {
      for (const auto& op : reg) std::printf("%s\n", op.name.c_str());
      return 0;
    }
    bool found = only.empty();
    int failed = 0, total = 0;
    std::printf("%-14s %-44s %12s  %s\n", "op", "case", "max rel err", "result");
    for (const auto& op : reg) {
      if (!only.empty() && op.name != only) continue;
      found = true;
      cg::Rng rng(seed);
      for (const auto& c : op.make(rng)) {
        const auto r = cg::ops::gradcheck(c, tol);
        ++total;
        failed += !r.pass;
        std::printf("%-14s %-44s %12.3e  %s\n", op.name.c_str(), c.detail.c_str(), r.max_rel_err,
                    r.pass ? "pass" : "FAIL");
      }
    }
    if (!found) throw cg::Error("unknown op '" + only + "' (see --list)");
    std::printf("gradcheck: %d cases, %d passed, %d failed (tolerance %.0e)\n", total, total - failed, failed, tol);
    return failed ? 1 : 0;
  });
}
