// tests/test_gradflow_dump.cpp — `gradflow --dump-grads` against the PyTorch reference
// (tests/reference/dump_grads_ref.py, goldens tests/golden/dumpgrads_*): a byte-vocab Llama,
// a LinChain adapter (n = 3) with non-zero B loaded by --adapter-in, a text longer than the
// model's context (so the truncation path runs). Every golden tensor (loss and the gradient
// of every adapter tensor under its PEFT name, PEFT layout) must be in the dump with the same
// shape and agree within the table's tolerance, relative to the tensor's largest entry; the
// dump must hold nothing else. Runs build/bin/gradflow from the repo root.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "models/io/safetensors.h"
#include "tests/tolerances.h"

using namespace cg;
namespace fs = std::filesystem;

namespace {

const std::string kGradflow = "build/bin/gradflow";
const std::string kGolden = "tests/golden/";

// Tolerance per golden name: the first entry whose pattern occurs in the name applies.
struct Tol {
  const char* pattern;
  double rel;  // max|ours − ref| ≤ rel · max|ref|
};
// The numbers live in tests/tolerances.h, with the errors observed.
constexpr Tol kTolerances[] = {
    {"loss", cg::testing::tol::kDumpLossRel},
    {".lora_A.weight", cg::testing::tol::kDumpGradRel},
    {".lora_mixer.", cg::testing::tol::kDumpGradRel},
    {".lora_B.weight", cg::testing::tol::kDumpGradRel},
};

const Tol* tolerance_for(const std::string& name) {
  for (const Tol& t : kTolerances)
    if (name.find(t.pattern) != std::string::npos) return &t;
  return nullptr;
}

int run_gradflow(const std::vector<std::string>& args, std::string* out) {
  const fs::path log = fs::temp_directory_path() / ("cg_dump_" + std::to_string(::getpid()) + ".log");
  std::string cmd = kGradflow;
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " >'" + log.string() + "' 2>&1 </dev/null";
  const int st = std::system(cmd.c_str());
  std::ifstream f(log);
  std::stringstream ss;
  ss << f.rdbuf();
  if (out) *out = ss.str();
  fs::remove(log);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::vector<std::string> base_args() {
  return {"--model", kGolden + "dumpgrads_base.safetensors", "--tokenizer",  "byte",
          "--text",  kGolden + "dumpgrads_text.txt",         "--adapter-in", kGolden + "dumpgrads_adapter.safetensors"};
}

}  // namespace

TEST_CASE("gradflow --dump-grads matches the PyTorch reference (LinChain n = 3, non-zero B)") {
  REQUIRE_MESSAGE(fs::exists(kGradflow), kGradflow << " not found: run make, and the tests from the repo root");
  const fs::path out = fs::temp_directory_path() / ("cg_dump_" + std::to_string(::getpid()) + ".safetensors");
  std::vector<std::string> args = base_args();
  args.insert(args.end(), {"--dump-grads", out.string()});
  std::string log;
  REQUIRE_MESSAGE(run_gradflow(args, &log) == 0, log);
  CHECK_MESSAGE(log.find("truncated") != std::string::npos, log);  // the text is longer than seq_len

  const models::SafeTensors ours = models::read_safetensors(out.string());
  const models::SafeTensors ref = models::read_safetensors(kGolden + "dumpgrads_expected.safetensors");
  fs::remove(out);
  CHECK(ours.tensors.size() == ref.tensors.size());
  REQUIRE(ref.tensors.size() == 1 + 2 * 7 * 5);  // loss; 2 layers × 7 modules × (A, 3 mixers, B)
  for (const auto& [name, r] : ref.tensors) {
    CAPTURE(name);
    const Tol* tol = tolerance_for(name);
    REQUIRE_MESSAGE(tol != nullptr, "no tolerance entry for golden tensor " << name);
    const auto it = ours.tensors.find(name);
    REQUIRE_MESSAGE(it != ours.tensors.end(), "the dump lacks " << name);
    REQUIRE(it->second.shape() == r.shape());
    const std::vector<double> a = it->second.to_f64_vector(), b = r.to_f64_vector();
    double max_ref = 0, max_diff = 0;
    for (size_t i = 0; i < b.size(); ++i) {
      max_ref = std::max(max_ref, std::abs(b[i]));
      max_diff = std::max(max_diff, std::abs(a[i] - b[i]));
    }
    REQUIRE(max_ref > 0);  // a zero gradient would make the comparison vacuous
    CHECK_MESSAGE(max_diff <= tol->rel * max_ref, name << ": max|diff| " << max_diff << ", max|ref| " << max_ref);
  }
}

TEST_CASE("gradflow --dump-grads: bad input is one line and exit code 2") {
  REQUIRE_MESSAGE(fs::exists(kGradflow), kGradflow << " not found: run make, and the tests from the repo root");
  std::vector<std::string> no_text{"--model",      kGolden + "dumpgrads_base.safetensors",
                                   "--tokenizer",  "byte",
                                   "--arith",      "add",
                                   "--dump-grads", "/tmp/never.safetensors"};
  std::string log;
  CHECK(run_gradflow(no_text, &log) == 2);
  CHECK(log.find("--text") != std::string::npos);
  std::vector<std::string> teacher_dump{"--task", "teacher", "--dump-grads", "/tmp/never.safetensors"};
  CHECK(run_gradflow(teacher_dump, &log) == 2);
}
