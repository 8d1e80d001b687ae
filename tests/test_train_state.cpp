// tests/test_train_state.cpp — training checkpoints: bit-exact round trip of parameters,
// optimizer state, step, data position and RNG; a run resumed from a checkpoint matches an
// uninterrupted one bit for bit; a crash in the middle of a save leaves the previous
// checkpoint loadable; mismatched or damaged files are FormatErrors.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/rng.h"
#include "engine/tape.h"
#include "models/io/file_io.h"
#include "models/io/safetensors.h"
#include "models/io/train_state.h"
#include "nn/adapters.h"
#include "nn/optim.h"
#include "ops/ops.h"
#include "tests/tool_runner.h"
#include "tests/safetensors_validate.h"

using namespace cg;
using namespace cg::nn;
using namespace cg::models;

namespace {

std::vector<uint32_t> bits(const Tensor& t) {
  std::vector<uint32_t> b(static_cast<size_t>(t.numel()));
  std::memcpy(b.data(), t.raw(), t.nbytes());
  return b;
}

// A small fine-tuning run: a frozen two-Linear base with LinChain adapters, regression on
// random batches drawn by the run's RNG (so the data order depends on the RNG state).
struct Run {
  ParamStore base{"base"};
  Linear l1, l2;
  AdapterSet set;
  std::unique_ptr<Optimizer> opt;
  Rng rng{99};
  int64_t position = 0;
  Tensor data_x, data_y;

  explicit Run(const std::string& optimizer = "adamw") {
    Rng init(1);
    l1.weight = base.add("model.layers.0.mlp.up_proj.weight", rand_uniform({16, 8}, -0.4, 0.4, init));
    l2.weight = base.add("model.layers.0.mlp.down_proj.weight", rand_uniform({4, 16}, -0.4, 0.4, init));
    base.finalize();
    AdapterConfig c;
    c.kind = AdapterKind::LinChain;
    c.rank = 4;
    c.chain = 2;
    set = attach_adapters({{"model.layers.0.mlp.up_proj", &l1}, {"model.layers.0.mlp.down_proj", &l2}}, c, 3);
    Rng r(4);
    set.store->flat().copy_from(rand_uniform(set.store->flat().shape(), -0.3, 0.3, r));  // B ≠ 0
    OptimConfig oc;
    oc.name = optimizer;
    oc.lr = 0.05;
    oc.momentum = optimizer == "sgd" ? 0.9 : 0.0;
    oc.weight_decay = 0.01;
    oc.warmup = 3;
    oc.total_steps = 10;
    oc.clip = 0.5;
    opt = std::make_unique<Optimizer>(*set.store, oc);
    data_x = rand_uniform({64, 8}, -1, 1, init);
    data_y = rand_uniform({64, 4}, -1, 1, init);
  }
  double step() {
    std::vector<double> xs, ys;
    const auto X = data_x.to_f64_vector(), Y = data_y.to_f64_vector();
    for (int b = 0; b < 6; ++b) {  // a random batch of 6 rows
      const uint64_t row = rng.below(64);
      xs.insert(xs.end(), X.begin() + static_cast<long>(row * 8), X.begin() + static_cast<long>(row * 8 + 8));
      ys.insert(ys.end(), Y.begin() + static_cast<long>(row * 4), Y.begin() + static_cast<long>(row * 4 + 4));
    }
    ++position;
    set.store->zero_grad();
    Tensor d = ops::sub(l2.forward(ops::silu(l1.forward(Tensor::from(xs, {6, 8})))), Tensor::from(ys, {6, 4}));
    Tensor loss = ops::mean_all(ops::mul(d, d));
    const double l = loss.item();
    backward(loss);
    opt->step();
    return l;
  }
  void save(const std::string& path) {
    save_train_state(path, *set.store, *opt, {position, rng.state(), {{"run", "test"}}});
  }
  void load(const std::string& path) {
    TrainState st = load_train_state(path, *set.store, *opt);
    position = st.data_position;
    rng.set_state(st.rng);
    CHECK(st.meta.at("run") == "test");
  }
};

}  // namespace

TEST_CASE("train state: save/load round trip is bit-exact") {
  cg::testing::TempDir tmp;
  for (const std::string o : {"adamw", "sgd"}) {
    Run a(o);
    for (int i = 0; i < 3; ++i) a.step();
    a.rng.normal();  // leave a cached spare normal in the RNG state
    a.save(tmp.file("rt.safetensors"));
    CHECK(cg::testing::safetensors_file_problem(tmp.file("rt.safetensors")) == "");
    Run b(o);
    b.load(tmp.file("rt.safetensors"));
    CHECK(bits(b.set.store->flat()) == bits(a.set.store->flat()));
    CHECK(bits(b.opt->m()) == bits(a.opt->m()));
    if (o == "adamw") CHECK(bits(b.opt->v()) == bits(a.opt->v()));
    CHECK(b.opt->step_count() == 3);
    CHECK(b.position == 3);
    const Rng::State sa = a.rng.state(), sb = b.rng.state();
    CHECK(std::memcmp(sa.s, sb.s, sizeof sa.s) == 0);
    CHECK(sb.has_spare);
    CHECK(std::memcmp(&sa.spare, &sb.spare, sizeof sa.spare) == 0);
    CHECK(b.rng.next_u64() == a.rng.next_u64());
    CHECK(!std::filesystem::exists(tmp.file("rt.safetensors.tmp")));
  }
}

TEST_CASE("train state: 10 steps straight equal 5 + resume + 5, bitwise") {
  cg::testing::TempDir tmp;
  Run straight;
  std::vector<double> ref;
  for (int i = 0; i < 10; ++i) ref.push_back(straight.step());
  std::vector<double> got;
  {
    Run first;
    for (int i = 0; i < 5; ++i) got.push_back(first.step());
    first.save(tmp.file("ckpt.safetensors"));
  }
  Run resumed;  // fresh objects: everything must come from the file
  resumed.load(tmp.file("ckpt.safetensors"));
  for (int i = 0; i < 5; ++i) got.push_back(resumed.step());
  for (int i = 0; i < 10; ++i) {
    CAPTURE(i);
    CHECK(std::memcmp(&got[static_cast<size_t>(i)], &ref[static_cast<size_t>(i)], sizeof(double)) == 0);
  }
  CHECK(bits(resumed.set.store->flat()) == bits(straight.set.store->flat()));
  MESSAGE("losses step 1, 5, 10: " << ref[0] << " " << ref[4] << " " << ref[9]);
  CHECK(ref[9] < ref[0]);
}

TEST_CASE("train state: a crash during save leaves the previous checkpoint loadable") {
  cg::testing::TempDir tmp;
  const std::string path = tmp.file("ckpt.safetensors");
  Run a;
  for (int i = 0; i < 2; ++i) a.step();
  a.save(path);
  const auto size_before = std::filesystem::file_size(path);
  const auto saved = bits(a.set.store->flat());
  for (int i = 0; i < 2; ++i) a.step();
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {  // the child dies half-way through writing the new checkpoint
    models::testing::crash_during_next_write(static_cast<int64_t>(size_before / 2));
    a.save(path);
    std::_Exit(0);  // not reached
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == models::testing::kCrashExitCode);
  // The half-written temp file (ckpt.safetensors.tmp.XXXXXX) is there; the checkpoint itself
  // is the old one, whole.
  auto temps = [&] {
    std::vector<std::string> t;
    for (const auto& e : std::filesystem::directory_iterator(tmp.path))
      if (e.path().filename().string().rfind("ckpt.safetensors.tmp.", 0) == 0) t.push_back(e.path().string());
    return t;
  };
  REQUIRE(temps().size() == 1);
  CHECK(std::filesystem::file_size(temps()[0]) == size_before / 2);
  CHECK(std::filesystem::file_size(path) == size_before);
  CHECK_THROWS_AS(read_safetensors(temps()[0]), FormatError);
  Run b;
  b.load(path);
  CHECK(b.opt->step_count() == 2);
  CHECK(bits(b.set.store->flat()) == saved);
  // The next save goes through and removes the stale temp file.
  a.save(path);
  CHECK(temps().empty());
  Run c;
  c.load(path);
  CHECK(c.opt->step_count() == 4);
}

TEST_CASE("train state: mismatched or damaged files are FormatErrors") {
  cg::testing::TempDir tmp;
  const std::string path = tmp.file("ckpt.safetensors");
  Run a;
  a.step();
  a.save(path);
  Run sgd("sgd");
  CHECK_THROWS_WITH_AS(sgd.load(path), doctest::Contains("optimizer adamw"), FormatError);
  // Another parameter group (e.g. a pretraining checkpoint given to a fine-tune).
  ParamStore other("base");
  other.add("w", Tensor::zeros({3}));
  other.finalize();
  other.set_trainable(true);
  Optimizer o(other, OptimConfig{});
  CHECK_THROWS_WITH_AS(load_train_state(path, other, o), doctest::Contains("group"), FormatError);
  // A truncated file.
  const auto bytes = read_file_bytes(path);
  {
    std::vector<uint8_t> half(bytes.begin(), bytes.begin() + static_cast<long>(bytes.size() / 2));
    write_file_durable(tmp.file("trunc.safetensors"), half);
  }
  Run b;
  const auto before = bits(b.set.store->flat());
  CHECK_THROWS_AS(b.load(tmp.file("trunc.safetensors")), FormatError);
  CHECK(bits(b.set.store->flat()) == before);  // untouched
  CHECK_THROWS_AS(b.load(tmp.file("missing.safetensors")), FormatError);
}
