// tests/test_data.cpp — token windows, resumable batch order, the arithmetic task.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include "models/text/arith.h"
#include "models/text/data.h"

using namespace cg;
using namespace cg::models;

TEST_CASE("train batches: targets are the next tokens, order depends only on (seed, position)") {
  std::vector<int32_t> toks(1000);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int32_t>(i % 97);
  TokenDataset ds(toks, 0.1, 16);
  CHECK(ds.train_tokens() == 900);
  CHECK(ds.val_tokens() == 100);
  Batch b = ds.train_batch(7, 0, 4);
  const auto ids = b.ids.to_i32_vector(), tg = b.targets.to_i32_vector();
  for (size_t i = 0; i < ids.size(); ++i) CHECK(tg[i] == (ids[i] + 1) % 97);
  // Samples 2..3 of a 4-batch equal a 2-batch started at position 2 (resume / sharding).
  Batch tail = ds.train_batch(7, 2, 2);
  const auto t = tail.ids.to_i32_vector();
  CHECK(std::vector<int32_t>(ids.begin() + 32, ids.end()) == t);
  CHECK(ds.train_batch(8, 0, 4).ids.to_i32_vector() != ids);
  // Windows never reach into the validation part.
  for (int64_t p = 0; p < 200; p += 8)
    for (int32_t v : ds.train_batch(1, p, 8).targets.to_i32_vector()) CHECK(v >= 0);
}

TEST_CASE("validation windows are consecutive and inside the validation part") {
  std::vector<int32_t> toks(500);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int32_t>(i);
  TokenDataset ds(toks, 0.2, 10);
  CHECK(ds.val_windows() == 9);
  Batch b = ds.val_batch(0, 2);
  const auto ids = b.ids.to_i32_vector();
  CHECK(ids[0] == 400);
  CHECK(ids[10] == 410);
  CHECK_THROWS_AS(TokenDataset(std::vector<int32_t>(5, 1), 0.1, 16), FormatError);
}

TEST_CASE("arithmetic task: correct sums, held-out pairs never in a corpus") {
  const std::string corpus = arith_corpus(ArithOp::Sub, 2000, 99, 3);
  std::set<std::string> seen;
  int lines = 0;
  size_t start = 0;
  while (true) {
    const size_t nl = corpus.find('\n', start);
    if (nl == std::string::npos) break;
    const std::string line = corpus.substr(start, nl - start);
    start = nl + 1;
    ++lines;
    const size_t minus = line.find('-'), eq = line.find('=');
    REQUIRE(minus != std::string::npos);
    const int a = std::stoi(line.substr(0, minus)), b = std::stoi(line.substr(minus + 1, eq - minus - 1));
    std::string ans = line.substr(eq + 1);  // least-significant digit first, 3 digits
    CHECK(ans.size() == 3);
    std::reverse(ans.begin(), ans.end());
    CHECK(std::stoi(ans) == a - b);
    CHECK(line.size() == 9);  // "aa-bb=ccc"
    CHECK(a >= b);
    seen.insert(line.substr(0, eq + 1));
  }
  CHECK(lines == 2000);
  for (const auto& [prompt, answer] : arith_eval_set(ArithOp::Sub, 200, 99, 3)) {
    CHECK(seen.count(prompt) == 0);
    const size_t minus = prompt.find('-');
    std::string ans = answer;
    std::reverse(ans.begin(), ans.end());
    CHECK(std::stoi(ans) == std::stoi(prompt.substr(0, minus)) - std::stoi(prompt.substr(minus + 1)));
  }
}
