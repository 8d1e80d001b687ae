// tests/test_robust_readers.cpp — readers that cannot be made to crash or hang, and the
// pieces of a safe run: depth-limited JSON (a 40 KB nesting reproducer), duplicate tensor
// names and holes refused, task-file caps, arith settings without a held-out set, the
// exclusive atomic writer, same_file, the checkpoint lock, the lr schedules, non-finite
// gradients kept from the parameters, and train states with impossible values refused.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/error.h"
#include "models/io/file_io.h"
#include "models/io/safetensors.h"
#include "models/io/train_state.h"
#include "models/text/arith.h"
#include "models/train/evaluation.h"
#include "nn/optim.h"
#include "tests/tool_runner.h"

using namespace cg;
using namespace cg::models;

namespace {

std::vector<uint8_t> raw_safetensors(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> b(8 + header.size() + data_bytes, 0);
  const uint64_t n = header.size();
  std::memcpy(b.data(), &n, 8);
  std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}

std::string error_of(const std::vector<uint8_t>& b) {
  try {
    parse_safetensors(b.data(), b.size(), "x.safetensors");
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("safetensors: deep nesting, duplicate names, holes and trailing bytes are one-line errors") {
  const std::string deep = "{\"a\":" + std::string(20000, '[') + std::string(20000, ']') + "}";  // 40 KB
  const std::string e1 = error_of(raw_safetensors(deep, 0));
  CHECK(e1.find("nested more than 64 levels") != std::string::npos);
  CHECK(e1.size() < 200);
  // 200k deep: still fast and bounded (no stack overflow, no gigabytes)
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(error_of(raw_safetensors(std::string(200000, '{'), 0)).find("nested") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
  const std::string dup =
      R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  CHECK(error_of(raw_safetensors(dup, 8)).find("'w' appears twice") != std::string::npos);
  const std::string hole = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  CHECK(error_of(raw_safetensors(hole, 8)).find("hole") != std::string::npos);
  const std::string tail = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  CHECK(error_of(raw_safetensors(tail, 8)).find("belong to no tensor") != std::string::npos);
  CHECK(error_of(raw_safetensors(tail, 4)).empty());
  // A long non-natural shape is described, not echoed.
  const std::string big_shape =
      R"({"w":{"dtype":"F32","shape":[")" + std::string(100000, 'x') + R"("],"data_offsets":[0,4]}})";
  const std::string e2 = error_of(raw_safetensors(big_shape, 4));
  CHECK(e2.find("non-natural") != std::string::npos);
  CHECK(e2.size() < 200);
}

TEST_CASE("JSON from outside: depth limit, also in a task file; task caps") {
  CHECK_THROWS_WITH_AS(parse_json_limited(std::string(100, '[') + std::string(100, ']'), "c.json"),
                       doctest::Contains("nested more than"), FormatError);
  CHECK(parse_json_limited(std::string(64, '[') + std::string(64, ']'), "c.json").is_array());
  CHECK(parse_json_limited(R"({"s":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["})", "c.json")
            .is_object());
  CHECK_THROWS_WITH_AS(parse_task(std::string(1000, '[') + std::string(1000, ']'), "t.json"),
                       doctest::Contains("nested"), FormatError);
  std::string choices = "a0";
  for (int i = 1; i < 1000000; ++i) choices += "/a" + std::to_string(i);
  const std::string item = R"([{"instruction":"Pick.\n\nAnswer format: )" + choices + R"(","input":"","answer":"a1"}])";
  const auto t0 = std::chrono::steady_clock::now();
  try {
    parse_task(item, "t.json");
    FAIL("10⁶ choices accepted");
  } catch (const FormatError& e) {
    CHECK(std::string(e.what()).find("more than 64 choices") != std::string::npos);
    CHECK(std::strlen(e.what()) < 200);
  }
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
}

TEST_CASE("arith: settings without a held-out pair are refused instead of looping") {
  CHECK_THROWS_WITH_AS(arith_eval_set(ArithOp::Add, 3, 2, 0), doctest::Contains("least --arith-max with one is"),
                       FormatError);
  CHECK_THROWS_AS(check_arith_settings(ArithOp::Sub, 0, false), FormatError);
  CHECK(arith_eval_set(ArithOp::Add, 3, 19, 0).size() == 3);
  for (int m = 1; m < 60; ++m)
    if (arith_has_held_out(ArithOp::Sub, m)) CHECK(arith_eval_set(ArithOp::Sub, 2, m, 1).size() == 2);
}

TEST_CASE("write_file_atomic: exclusive temps, symlinks not followed, nothing left behind") {
  cg::testing::TempDir d;
  const std::string target = d.file("victim.txt"), link = d.file("out.bin");
  { std::ofstream(target) << "precious"; }
  std::filesystem::create_symlink(target, link);
  write_file_atomic(link, {1, 2, 3});  // replaces the link itself, not its target
  CHECK(cg::testing::slurp(target) == "precious");
  CHECK(std::filesystem::file_size(link) == 3);
  CHECK(cg::testing::files_starting(d.path, "out.bin.tmp").empty());
  std::filesystem::create_directories(d.file("dir"));
  CHECK_THROWS_AS(write_file_atomic(d.file("dir"), {1}), FormatError);
  CHECK(cg::testing::files_starting(d.path, "dir.tmp").empty());
  CHECK_THROWS_AS(write_file_atomic(d.file("no/such/x"), {1}), FormatError);
}

TEST_CASE("same_file and the checkpoint lock") {
  cg::testing::TempDir d;
  const std::string a = d.file("a");
  { std::ofstream(a) << "x"; }
  std::filesystem::create_hard_link(a, d.file("hard"));
  std::filesystem::create_symlink(a, d.file("soft"));
  std::filesystem::create_directories(d.file("sub"));
  CHECK(same_file(a, d.file("hard")));
  CHECK(same_file(a, d.file("soft")));
  CHECK(same_file(a, d.file("sub/../a")));
  CHECK(same_file(d.file("new"), d.file("sub/../new")));  // not there yet: canonical parents
  CHECK_FALSE(same_file(a, d.file("new")));
  {
    CheckpointLock l(d.file("ck"));
    CHECK_THROWS_WITH_AS(CheckpointLock(d.file("ck")), doctest::Contains("another run"), FormatError);
  }
  CHECK_FALSE(std::filesystem::exists(d.file("ck.lock")));
  CheckpointLock again(d.file("ck"));
}

TEST_CASE("optimizer: constant and linear schedules; a non-finite gradient leaves the parameters alone") {
  nn::ParamStore s("t");
  s.add("w", Tensor::from_f32(std::vector<float>{1, 2}.data(), {2}));
  s.finalize();
  s.set_trainable(true);
  nn::OptimConfig c;
  c.name = "sgd";
  c.lr = 0.5;
  c.total_steps = 11;
  c.warmup = 1;
  c.schedule = "linear";
  c.min_lr_frac = 0.0;
  nn::Optimizer lin(s, c);
  CHECK(lin.lr_at(0) == doctest::Approx(0.5));
  CHECK(lin.lr_at(6) == doctest::Approx(0.25));
  CHECK(lin.lr_at(11) == doctest::Approx(0.0));
  c.schedule = "constant";
  nn::Optimizer con(s, c);
  CHECK(con.lr_at(7) == 0.5);
  c.schedule = "step";
  CHECK_THROWS_AS(nn::Optimizer(s, c), FormatError);
  c.schedule = "constant";
  c.weight_decay = std::nan("");
  CHECK_THROWS_AS(nn::Optimizer(s, c), FormatError);
  c.weight_decay = 0;
  c.clip = 0;
  nn::Optimizer o(s, c);
  s.flat_grad().data<float>()[0] = std::numeric_limits<float>::quiet_NaN();
  const auto before = s.flat().to_f32_vector();
  const auto info = o.step();
  CHECK_FALSE(info.finite);
  CHECK(o.step_count() == 0);
  CHECK(s.flat().to_f32_vector() == before);
}

TEST_CASE("train state: negative second moments, non-finite values and absurd steps are refused") {
  cg::testing::TempDir d;
  nn::ParamStore s("t");
  s.add("w", Tensor::from_f32(std::vector<float>{1, 2}.data(), {2}));
  s.finalize();
  s.set_trainable(true);
  nn::Optimizer o(s, nn::OptimConfig{});
  s.flat_grad().data<float>()[0] = 1;
  o.step();
  const std::string path = d.file("ck");
  save_train_state(path, s, o, TrainState{});
  const SafeTensors st = read_safetensors(path);
  auto rewrite = [&](const std::string& name, float value, const std::string& key, const std::string& meta_value) {
    std::vector<std::pair<std::string, Tensor>> ts;
    for (const std::string& n : st.names) {
      Tensor t = st.tensors.at(n).clone();
      if (n == name) t.data<float>()[0] = value;
      ts.emplace_back(n, t);
    }
    auto meta = st.metadata;
    if (!key.empty()) meta[key] = meta_value;
    const std::string p = d.file("bad");
    write_file_atomic(p, serialize_safetensors(ts, meta));
    return p;
  };
  CHECK_THROWS_WITH_AS(load_train_state(rewrite("optim.v.w", -1, "", ""), s, o), doctest::Contains("negative"),
                       FormatError);
  CHECK_THROWS_WITH_AS(load_train_state(rewrite("w", std::nanf(""), "", ""), s, o), doctest::Contains("non-finite"),
                       FormatError);
  CHECK_THROWS_WITH_AS(load_train_state(rewrite("", 0, "step", "18446744073709551615"), s, o),
                       doctest::Contains("out of range"), FormatError);
  CHECK_NOTHROW(load_train_state(rewrite("", 0, "", ""), s, o));
}
