// tests/test_gguf.cpp — the GGUF reader: dequantization of every ggml type against gguf-py's
// (tests/golden/gguf_dequant.json), hostile files (each → one FormatError, and through a tool
// exit 2 with one line), the real SmolLM2 GGUF (config, greedy chat replies and text loss
// against transformers: tests/golden/smollm2_{chat,loss}.json), and HF folders written from it.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/tape.h"
#include "models/io/file_io.h"
#include "models/io/gguf.h"
#include "models/io/hf_llama.h"
#include "models/io/safetensors.h"
#include "models/llama/generation.h"
#include "models/llama/llama.h"
#include "models/text/chat_template.h"
#include "models/text/tokenizer_json.h"
#include "models/train/evaluation.h"
#include "tests/test_util.h"
#include "tests/tool_runner.h"

using namespace cg;
using namespace cg::models;
namespace fs = std::filesystem;

namespace {

const std::string kGguf = "../shared/data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

std::vector<uint8_t> from_hex(const std::string& h) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < h.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}

// A small valid GGUF: a few metadata values of every kind and one F32 tensor [2,32] plus one
// Q8_0 tensor [1,32]. The builder keeps the byte offsets of the fields the hostile cases change.
struct Builder {
  std::vector<uint8_t> b;
  size_t at_tensor_count = 0, at_kv_count = 0, at_str_len = 0, at_array_len = 0, at_value_type = 0;
  size_t at_ggml_type = 0, at_offset = 0, at_dim = 0;
  template <class T>
  void put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
  }
  std::vector<uint8_t> build() {
    b.clear();
    b.insert(b.end(), {'G', 'G', 'U', 'F'});
    put<uint32_t>(3);
    at_tensor_count = b.size();
    put<uint64_t>(2);
    at_kv_count = b.size();
    put<uint64_t>(5);
    str("general.architecture");
    at_value_type = b.size();
    put<uint32_t>(8);
    at_str_len = b.size();
    str("llama");
    str("general.alignment");
    put<uint32_t>(4);
    put<uint32_t>(32);
    str("some.float");
    put<uint32_t>(12);
    put<double>(0.5);
    str("some.bool");
    put<uint32_t>(7);
    put<uint8_t>(1);
    str("some.array");
    put<uint32_t>(9);
    put<uint32_t>(5);
    at_array_len = b.size();
    put<uint64_t>(3);
    put<int32_t>(-1);
    put<int32_t>(0);
    put<int32_t>(7);
    str("a.weight");
    put<uint32_t>(2);
    at_dim = b.size();
    put<uint64_t>(32);
    put<uint64_t>(2);
    put<uint32_t>(0);  // F32
    put<uint64_t>(0);
    str("b.weight");
    put<uint32_t>(1);
    put<uint64_t>(32);
    at_ggml_type = b.size();
    put<uint32_t>(8);  // Q8_0
    at_offset = b.size();
    put<uint64_t>(256);
    while (b.size() % 32) b.push_back(0);
    for (int i = 0; i < 64; ++i) put<float>(static_cast<float>(i) * 0.25f);
    put<uint16_t>(0x3C00);  // d = 1
    for (int i = 0; i < 32; ++i) put<int8_t>(static_cast<int8_t>(i - 16));
    return b;
  }
};

template <class T>
void poke(std::vector<uint8_t>& b, size_t at, T v) {
  std::memcpy(b.data() + at, &v, sizeof(T));
}

struct Hostile {
  const char* name;
  std::vector<uint8_t> bytes;
  const char* needle;
};

std::vector<Hostile> hostile_files() {
  Builder g;
  const std::vector<uint8_t> good = g.build();
  std::vector<Hostile> h;
  auto with = [&](const char* name, const char* needle, auto edit) {
    std::vector<uint8_t> b = good;
    edit(b);
    h.push_back({name, b, needle});
  };
  with("bad_magic", "bad magic", [](auto& b) { b[0] = 'X'; });
  with("version_1", "version 1", [](auto& b) { poke<uint32_t>(b, 4, 1); });
  with("huge_tensor_count", "tensor count", [&](auto& b) { poke<uint64_t>(b, g.at_tensor_count, uint64_t{1} << 60); });
  with("huge_kv_count", "metadata count", [&](auto& b) { poke<uint64_t>(b, g.at_kv_count, uint64_t{1} << 62); });
  with("huge_string", "truncated", [&](auto& b) { poke<uint64_t>(b, g.at_str_len, uint64_t{1} << 50); });
  with("huge_array", "array elements", [&](auto& b) { poke<uint64_t>(b, g.at_array_len, uint64_t{1} << 40); });
  with("unknown_value_type", "unknown value type", [&](auto& b) { poke<uint32_t>(b, g.at_value_type, 99); });
  with("unknown_ggml_type", "ggml type 77", [&](auto& b) { poke<uint32_t>(b, g.at_ggml_type, 77); });
  with("offset_past_end", "past the end", [&](auto& b) { poke<uint64_t>(b, g.at_offset, 1 << 20); });
  with("misaligned_offset", "not aligned", [&](auto& b) { poke<uint64_t>(b, g.at_offset, 257); });
  with("zero_dimension", "dimension 0", [&](auto& b) { poke<uint64_t>(b, g.at_dim, 0); });
  with("truncated_data", "past the end", [&](auto& b) { b.resize(b.size() - 5); });
  with("truncated_header", "truncated", [&](auto& b) { b.resize(g.at_array_len + 4); });
  return h;
}

}  // namespace

TEST_CASE("gguf: every ggml type dequantizes as gguf-py does") {
  const nlohmann::json j = cg::testing::read_golden_json("gguf_dequant.json");
  REQUIRE(j["cases"].size() == 10);
  for (const auto& c : j["cases"]) {
    INFO("type " << c["name"].get<std::string>());
    const std::vector<uint8_t> raw = from_hex(c["hex"].get<std::string>());
    const std::vector<double> want = c["values"].get<std::vector<double>>();
    const uint32_t type = c["type"].get<uint32_t>();
    REQUIRE(ggml_row_bytes(type, want.size()) == raw.size());
    std::vector<float> got(want.size());
    ggml_dequantize(type, raw.data(), got.data(), want.size());
    // Each value is at most d·s·q − dmin·m in float32: a few roundings of the largest term.
    double scale = 0;
    for (double w : want) scale = std::max(scale, std::fabs(w));
    int bad = 0;
    for (size_t k = 0; k < want.size(); ++k)
      if (!(std::fabs(got[k] - want[k]) <= 4 * 1.2e-7 * (scale + std::fabs(want[k])))) ++bad;
    CHECK(bad == 0);
  }
}

TEST_CASE("gguf: the small valid file parses; hostile variants each give one FormatError") {
  Builder g;
  const GgufFile f = parse_gguf(g.build(), "mem");
  CHECK(f.version == 3);
  CHECK(f.get_string("general.architecture") == "llama");
  CHECK(f.get_float("some.float") == 0.5);
  CHECK(f.get_int("some.bool") == 1);
  CHECK(f.get_array("some.array").items.at(2).i == 7);
  REQUIRE(f.tensors.size() == 2);
  const Tensor a = gguf_tensor_f32(f, f.tensors[0]);
  CHECK(a.shape() == Shape{2, 32});
  CHECK(a.data<float>()[33] == 33 * 0.25f);
  const Tensor b = gguf_tensor_f32(f, f.tensors[1]);
  CHECK(b.data<float>()[0] == -16.0f);
  CHECK(b.data<float>()[31] == 15.0f);
  const auto cases = hostile_files();
  CHECK(cases.size() >= 10);
  for (const Hostile& h : cases) {
    INFO(h.name);
    try {
      parse_gguf(h.bytes, h.name);
      FAIL_CHECK("no error");
    } catch (const FormatError& e) {
      CHECK(std::string(e.what()).find(h.needle) != std::string::npos);
      CHECK(std::string(e.what()).find('\n') == std::string::npos);
    }
  }
}

TEST_CASE("gguf: hostile files through evaluate and tokenize → exit 2 and one line") {
  if (!cg::testing::have_file("build/bin/evaluate") || !cg::testing::have_file("build/bin/tokenize")) return;
  cg::testing::TempDir d;
  for (const Hostile& h : hostile_files()) {
    INFO(h.name);
    const std::string path = d.file(std::string(h.name) + ".gguf");
    write_file_atomic(path, h.bytes);
    cg::testing::check_usage_error(cg::testing::run("build/bin/evaluate", {"--model", path, "--text", path}),
                                   "evaluate", h.needle);
    cg::testing::check_usage_error(cg::testing::run("build/bin/tokenize", {"--tokenizer", path, "--file", path}),
                                   "tokenize", h.needle);
  }
}

TEST_CASE("gguf: SmolLM2-135M-Instruct loads with the published hyperparameters") {
  if (!cg::testing::have_file(kGguf)) return;
  const auto t0 = std::chrono::steady_clock::now();
  const GgufFile g = read_gguf(kGguf);
  const auto t1 = std::chrono::steady_clock::now();
  double deq = 0;
  for (const GgufTensorInfo& t : g.tensors) {
    const auto a = std::chrono::steady_clock::now();
    (void)gguf_tensor_f32(g, t);
    deq += std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
  }
  const Checkpoint ck = gguf_to_checkpoint(g);
  const auto t2 = std::chrono::steady_clock::now();
  MESSAGE("read+parse " << std::chrono::duration<double>(t1 - t0).count() << " s; dequantize all tensors " << deq
                        << " s; checkpoint (dequantize, q/k permutation, checks) "
                        << std::chrono::duration<double>(t2 - t1).count() - deq << " s");
  const LlamaConfig& c = ck.config;
  CHECK(g.version == 3);
  CHECK(c.n_layers == 30);
  CHECK(c.dim == 576);
  CHECK(c.hidden_dim == 1536);
  CHECK(c.n_heads == 9);
  CHECK(c.n_kv_heads == 3);
  CHECK(c.vocab_size == 49152);
  CHECK(c.seq_len == 8192);
  CHECK(c.rope_theta == 100000.0);
  CHECK(c.norm_eps == doctest::Approx(1e-5).epsilon(1e-6));
  CHECK(c.tied_embeddings);
  CHECK(c.param_count() == 134515008);
  const HfBpeTokenizer tok = HfBpeTokenizer::from_gguf(g);
  CHECK(tok.vocab_size() == 49152);
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);
  CHECK_FALSE(tok.add_bos());
  CHECK(detect_chat_format(tok.chat_template()) == ChatFormat::ChatML);
  CHECK(default_system_message(ChatFormat::ChatML, tok.chat_template()) ==
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
}

TEST_CASE("gguf: greedy chat replies and text losses equal transformers'") {
  if (!cg::testing::have_file(kGguf)) return;
  const GgufFile g = read_gguf(kGguf);
  auto model = LlamaModel::from_checkpoint(gguf_to_checkpoint(g));
  const HfBpeTokenizer tok = HfBpeTokenizer::from_gguf(g);
  const nlohmann::json chat = cg::testing::read_golden_json("smollm2_chat.json");
  for (const auto& c : chat["chats"]) {
    const std::string prompt = c["prompt"].get<std::string>();
    INFO(prompt);
    const std::string text = render_chat(ChatFormat::ChatML, tok.chat_template(), {{"user", prompt}}, true);
    const std::vector<int> ids = tok.encode(text, false, false);
    CHECK(ids == c["prompt_ids"].get<std::vector<int>>());  // template + tokenizer vs jinja2 + tokenizers
    std::string reply;
    const ContinueStats st = continue_tokens(*model, tok, ids, chat["max_new_tokens"].get<int64_t>(), {2}, 0, 0.9, 0,
                                             [&](const std::string& p) { reply += p; });
    CHECK(st.new_tokens == c["reply_ids"].get<std::vector<int>>());
    CHECK(reply == c["reply"].get<std::string>());
  }
  const nlohmann::json loss = cg::testing::read_golden_json("smollm2_loss.json");
  for (const auto& [name, v] : loss.items()) {
    INFO(name);
    const TextScore s = score_text(*model, tok, v["text"].get<std::string>());
    CHECK(s.tokens == v["tokens"].get<int64_t>());
    // float32 forward vs float32 torch: relative 1e-4 leaves room for the summation orders.
    CHECK(std::fabs(s.loss - v["loss"].get<double>()) <= 1e-4 * v["loss"].get<double>());
  }
}

TEST_CASE("gguf: an HF folder written from it (one file or sharded) reads back bit for bit") {
  if (!cg::testing::have_file(kGguf)) return;
  const Checkpoint ck = read_gguf_checkpoint(kGguf);
  cg::testing::TempDir d;
  const std::string one = d.file("one");
  write_hf_folder(one, ck);
  const Checkpoint back = read_checkpoint(one);
  CHECK(back.config == ck.config);
  REQUIRE(back.tensors.size() == ck.tensors.size());
  for (size_t k = 0; k < ck.tensors.size(); ++k) CHECK(bitwise_equal(back.tensors[k].second, ck.tensors[k].second));
  // Sharded: the same tensors split over two files and an index; a shard outside the folder is refused.
  const std::string sh = d.file("sharded");
  fs::create_directories(sh);
  fs::copy_file(fs::path(one) / "config.json", fs::path(sh) / "config.json");
  std::vector<std::pair<std::string, Tensor>> a, b;
  nlohmann::json map;
  for (size_t k = 0; k + 1 < ck.tensors.size(); ++k) {  // lm_head is tied: left out, as HF saves it
    (k % 2 ? a : b).push_back(ck.tensors[k]);
    map[ck.tensors[k].first] = k % 2 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_safetensors((fs::path(sh) / "model-00001-of-00002.safetensors").string(), a, {{"format", "pt"}});
  write_safetensors((fs::path(sh) / "model-00002-of-00002.safetensors").string(), b, {{"format", "pt"}});
  const std::string index = nlohmann::json{{"metadata", nlohmann::json::object()}, {"weight_map", map}}.dump();
  write_file_atomic((fs::path(sh) / "model.safetensors.index.json").string(),
                    std::vector<uint8_t>(index.begin(), index.end()));
  const Checkpoint sharded = read_checkpoint(sh);
  for (size_t k = 0; k < ck.tensors.size(); ++k)
    CHECK(bitwise_equal(sharded.get(ck.tensors[k].first), ck.tensors[k].second));
  map["model.norm.weight"] = "../elsewhere.safetensors";
  const std::string bad = nlohmann::json{{"weight_map", map}}.dump();
  write_file_atomic((fs::path(sh) / "model.safetensors.index.json").string(),
                    std::vector<uint8_t>(bad.begin(), bad.end()));
  CHECK_THROWS_AS(read_checkpoint(sh), FormatError);
}
