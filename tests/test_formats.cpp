// tests/test_formats.cpp — checkpoint formats: LlamaConfig, safetensors (round trip,
// F16/BF16 decoding, every corruption case), llama2.c .bin (stories260K, truncation,
// round trip, the RoPE q/k permutation) and HF Llama safetensors.
#include <doctest/doctest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/rng.h"
#include "models/io/checkpoint.h"
#include "models/io/file_io.h"
#include "models/io/hf_llama.h"
#include "models/io/llama2c.h"
#include "models/io/safetensors.h"
#include "tests/skip.h"
#include "tests/safetensors_validate.h"
#include "tests/test_util.h"

using namespace cg;
using namespace cg::models;
namespace fs = std::filesystem;

namespace {

const std::string kStoriesBin = "../shared/data/stories260K/stories260K.bin";

// A fresh directory under the system temp dir, removed with everything in it.
struct TempDir {
  fs::path dir;
  TempDir() {
    static int counter = 0;
    dir = fs::temp_directory_path() /
          ("chaingrad_formats_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string path(const std::string& name) const { return (dir / name).string(); }
};

// A safetensors buffer from a raw header string and data bytes (header padded to 8).
std::vector<uint8_t> make_st(std::string header, const std::vector<uint8_t>& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  std::vector<uint8_t> out(8 + header.size() + data.size());
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  if (!data.empty()) std::memcpy(out.data() + 8 + header.size(), data.data(), data.size());
  return out;
}

SafeTensors parse(const std::vector<uint8_t>& b) { return parse_safetensors(b.data(), b.size(), "test.safetensors"); }

std::string throws_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

bool bits_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

LlamaConfig tiny_config(bool tied) {
  LlamaConfig c;
  c.dim = 8;
  c.hidden_dim = 12;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 10;
  c.seq_len = 6;
  c.tied_embeddings = tied;
  return c;
}

Checkpoint random_checkpoint(const LlamaConfig& c, uint64_t seed) {
  Rng rng(seed);
  Checkpoint ck;
  ck.config = c;
  for (const TensorSpec& s : hf_llama_tensor_specs(c)) {
    if (s.name == "lm_head.weight" && c.tied_embeddings)
      ck.tensors.emplace_back(s.name, ck.get("model.embed_tokens.weight").clone());
    else ck.tensors.emplace_back(s.name, rand_normal(s.shape, 0.0, 1.0, rng));
  }
  return ck;
}

void check_same_checkpoint(const Checkpoint& a, const Checkpoint& b) {
  CHECK(a.config == b.config);
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    CHECK(a.tensors[i].first == b.tensors[i].first);
    CHECK_MESSAGE(bits_equal(a.tensors[i].second, b.tensors[i].second), a.tensors[i].first);
  }
}

}  // namespace

// ---- LlamaConfig ------------------------------------------------------------------------

TEST_CASE("LlamaConfig: validate rejects bad sizes with clear messages") {
  LlamaConfig ok = tiny_config(true);
  CHECK_NOTHROW(ok.validate());
  auto bad = [&](auto mutate, const char* needle) {
    LlamaConfig c = ok;
    mutate(c);
    const std::string msg = throws_message([&] { c.validate("hdr"); });
    CHECK_MESSAGE(msg.find(needle) != std::string::npos, msg);
  };
  bad([](LlamaConfig& c) { c.dim = 0; }, "dim=0");
  bad([](LlamaConfig& c) { c.n_layers = -3; }, "n_layers=-3");
  bad([](LlamaConfig& c) { c.dim = 10; }, "not divisible by n_heads");
  bad([](LlamaConfig& c) { c.n_kv_heads = 3; }, "not divisible by n_kv_heads");
  bad([](LlamaConfig& c) { c.dim = 12; }, "odd");  // head_dim 3
  bad([](LlamaConfig& c) { c.vocab_size = int64_t{1} << 40; }, "vocab_size");
  bad([](LlamaConfig& c) { c.seq_len = 2000000000; }, "seq_len");
  bad([](LlamaConfig& c) { c.norm_eps = 0; }, "norm_eps");
}

TEST_CASE("LlamaConfig: HF config JSON round trip and errors") {
  LlamaConfig c = tiny_config(false);
  c.norm_eps = 1e-6;
  c.rope_theta = 500000;
  nlohmann::json j = c.to_hf_json();
  CHECK(j["architectures"][0] == "LlamaForCausalLM");
  CHECK(j["model_type"] == "llama");
  CHECK(j["hidden_size"] == 8);
  CHECK(j["num_key_value_heads"] == 2);
  CHECK(LlamaConfig::from_hf_json(j) == c);
  nlohmann::json no_kv = j;
  no_kv.erase("num_key_value_heads");
  CHECK(LlamaConfig::from_hf_json(no_kv).n_kv_heads == 4);
  nlohmann::json missing = j;
  missing.erase("hidden_size");
  CHECK_THROWS_AS(LlamaConfig::from_hf_json(missing), FormatError);
  nlohmann::json wrong_type = j;
  wrong_type["num_hidden_layers"] = "two";
  CHECK_THROWS_AS(LlamaConfig::from_hf_json(wrong_type), FormatError);
  nlohmann::json other = j;
  other["model_type"] = "gpt2";
  CHECK_THROWS_AS(LlamaConfig::from_hf_json(other), FormatError);
  nlohmann::json scaled = j;
  scaled["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  CHECK_THROWS_AS(LlamaConfig::from_hf_json(scaled), FormatError);
  CHECK_THROWS_AS(LlamaConfig::from_hf_json(nlohmann::json::array()), FormatError);
}

// ---- safetensors ------------------------------------------------------------------------

TEST_CASE("safetensors: write/read round trip is bit-exact and keeps metadata") {
  TempDir tmp;
  const float specials[6] = {1.5f,
                             -0.0f,
                             std::numeric_limits<float>::denorm_min(),
                             std::numeric_limits<float>::infinity(),
                             std::bit_cast<float>(0x7fc00123u),
                             -3.25e-7f};
  Rng rng(7);
  std::vector<std::pair<std::string, Tensor>> ts = {
      {"b.matrix", Tensor::from_f32(specials, {2, 3})},
      {"a.vector", rand_normal({5}, 0, 1, rng)},
      {"scalar", Tensor::from({42.0}, {})},
      {"rank4", rand_normal({2, 1, 3, 2}, 0, 1, rng)},
      {"empty", Tensor::empty({0, 3})},
      {"double", Tensor::from({1.0 / 3.0, -2e300}, {2}, DType::F64)},
      {"ints", Tensor::from_i32({-1, 0, 7, 1 << 30}, {4})},
  };
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "ünïcode \"quoted\""}};
  const std::string path = tmp.path("rt.safetensors");
  write_safetensors(path, ts, meta);
  CHECK(cg::testing::dir_entries(tmp.dir) == std::vector<std::string>{"rt.safetensors"});  // no temp file left
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  uint64_t header_len;
  std::memcpy(&header_len, bytes.data(), 8);
  CHECK((8 + header_len) % 8 == 0);

  SafeTensors st = read_safetensors(path);
  CHECK(st.metadata == meta);
  REQUIRE(st.names.size() == ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    CHECK(st.names[i] == ts[i].first);  // file order = write order
    CHECK_MESSAGE(bits_equal(st.tensors.at(ts[i].first), ts[i].second), ts[i].first);
  }
  // The in-memory parser agrees with the file reader.
  SafeTensors mem = parse(bytes);
  CHECK(mem.names == st.names);
  CHECK(bits_equal(mem.tensors.at("b.matrix"), ts[0].second));
}

TEST_CASE("safetensors: F16 and BF16 decode to the hand-computed floats") {
  const uint16_t f16[] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x8000, 0x7C00, 0x3555, 0x0400};
  const float f16_want[] = {1.0f,
                            -2.0f,
                            65504.0f,
                            5.9604644775390625e-8f /* 2^-24 */,
                            6.0975551605224609375e-5f /* 1023·2^-24 */,
                            -0.0f,
                            std::numeric_limits<float>::infinity(),
                            0.333251953125f,
                            6.103515625e-5f /* 2^-14 */};
  const uint16_t bf16[] = {0x3F80, 0xC040, 0x4049, 0x0001, 0xFF80, 0x3EAB};
  const float bf16_want[] = {1.0f,
                             -3.0f,
                             3.140625f,
                             9.18354961579912115600575419705e-41f /* 2^-133 */,
                             -std::numeric_limits<float>::infinity(),
                             0.333984375f};
  std::vector<uint8_t> data(sizeof(f16) + sizeof(bf16) + 2);
  std::memcpy(data.data(), f16, sizeof(f16));
  std::memcpy(data.data() + sizeof(f16), bf16, sizeof(bf16));
  std::memcpy(data.data() + sizeof(f16) + sizeof(bf16), "\x00\x7e", 2);  // F16 quiet NaN 0x7E00
  const std::string header = R"({"h":{"dtype":"F16","shape":[3,3],"data_offsets":[0,18]},)"
                             R"("b":{"dtype":"BF16","shape":[6],"data_offsets":[18,30]},)"
                             R"("nan":{"dtype":"F16","shape":[1],"data_offsets":[30,32]}})";
  SafeTensors st = parse(make_st(header, data));
  const Tensor h = st.tensors.at("h"), b = st.tensors.at("b");
  CHECK(h.dtype() == DType::F32);
  CHECK(h.shape() == Shape{3, 3});
  for (int i = 0; i < 9; ++i)
    CHECK_MESSAGE(std::bit_cast<uint32_t>(h.data<float>()[i]) == std::bit_cast<uint32_t>(f16_want[i]), "f16 #", i);
  for (int i = 0; i < 6; ++i)
    CHECK_MESSAGE(std::bit_cast<uint32_t>(b.data<float>()[i]) == std::bit_cast<uint32_t>(bf16_want[i]), "bf16 #", i);
  CHECK(std::isnan(st.tensors.at("nan").data<float>()[0]));
  CHECK(st.names == std::vector<std::string>{"h", "b", "nan"});
}

TEST_CASE("safetensors: every corruption is a FormatError") {
  const std::vector<uint8_t> f32x2(8, 0);
  const std::string good = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  REQUIRE_NOTHROW(parse(make_st(good, f32x2)));

  auto fails = [&](const std::vector<uint8_t>& b, const char* needle) {
    const std::string msg = throws_message([&] { parse(b); });
    const std::string info = std::string("wanted '") + needle + "' in: '" + msg + "'";
    CHECK_MESSAGE(msg.find(needle) != std::string::npos, info);
  };
  auto with_header = [&](const std::string& h, std::vector<uint8_t> d = std::vector<uint8_t>(8, 0)) {
    return make_st(h, d);
  };
  std::vector<uint8_t> valid = make_st(good, f32x2);

  SUBCASE("truncated") {
    fails(std::vector<uint8_t>(valid.begin(), valid.end() - 1), "out of range");
    fails(std::vector<uint8_t>(valid.begin(), valid.begin() + 5), "too short");
    fails({}, "too short");
  }
  SUBCASE("header length past the end") {
    std::vector<uint8_t> b = valid;
    const uint64_t n = b.size();
    std::memcpy(b.data(), &n, 8);
    fails(b, "runs past the end");
  }
  SUBCASE("huge claimed header (must fail before allocating)") {
    std::vector<uint8_t> b = valid;
    const uint64_t n = uint64_t{1} << 62;
    std::memcpy(b.data(), &n, 8);
    fails(b, "runs past the end");
  }
  SUBCASE("bad JSON") {
    fails(with_header(R"({"t":{"dtype":"F32",)"), "bad JSON");
    fails(with_header("[1,2]"), "not an object");
    fails(with_header(R"({"t":[1]})"), "not a JSON object");
    fails(with_header(R"({"t":{"dtype":"F32","shape":[2]}})"), "needs");
    fails(with_header(R"({"__metadata__":{"k":3}})"), "not a string");
  }
  SUBCASE("offsets out of range") {
    fails(with_header(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})"), "out of range");
    fails(with_header(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})"), "out of range");
    fails(with_header(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})"), "data_offsets");
    fails(with_header(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})"), "data_offsets");
  }
  SUBCASE("overlapping") {
    fails(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                      std::vector<uint8_t>(12, 0)),
          "overlap");
  }
  SUBCASE("byte length differs from numel × dtype size") {
    fails(with_header(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})"), "needs 12 bytes");
    fails(with_header(R"({"t":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,8]}})"),
          "overflows");
    fails(with_header(R"({"t":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]}})"), "non-natural");
  }
  SUBCASE("unknown or unsupported dtype") {
    fails(with_header(R"({"t":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})"), "unsupported dtype 'Q7'");
    fails(with_header(R"({"t":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})"), "unsupported dtype 'I64'");
  }
  SUBCASE("rank above 4") {
    fails(with_header(R"({"t":{"dtype":"F32","shape":[1,1,1,1,2],"data_offsets":[0,8]}})"), "rank 5");
  }
  SUBCASE("missing file or a directory") {
    CHECK_THROWS_AS(read_safetensors("/nonexistent/dir/x.safetensors"), FormatError);
    CHECK_THROWS_AS(read_safetensors(fs::temp_directory_path().string()), FormatError);
  }
}

TEST_CASE("safetensors: a failed write leaves no temp file and the old file intact") {
  TempDir tmp;
  const std::string path = tmp.path("keep.safetensors");
  const float v[2] = {1, 2};
  write_safetensors(path, {{"x", Tensor::from_f32(v, {2})}}, {});
  const std::vector<uint8_t> before = read_file_bytes(path);
  CHECK_THROWS_AS(write_safetensors(path, {{"x", Tensor::from_f32(v, {2})}, {"x", Tensor::from_f32(v, {2})}}, {}),
                  FormatError);
  CHECK(read_file_bytes(path) == before);
  CHECK_THROWS_AS(write_safetensors(tmp.path("no/such/dir/a.safetensors"), {{"x", Tensor::from_f32(v, {2})}}, {}),
                  FormatError);
  CHECK(cg::testing::dir_entries(tmp.dir) == std::vector<std::string>{"keep.safetensors"});  // nothing created
  // A path that is a directory: the rename fails and the temp file is removed.
  fs::create_directories(tmp.path("adir"));
  fs::create_directories(tmp.path("adir/inner"));
  CHECK_THROWS_AS(write_safetensors(tmp.path("adir"), {{"x", Tensor::from_f32(v, {2})}}, {}), FormatError);
  CHECK(cg::testing::dir_entries(tmp.dir) == std::vector<std::string>{"adir", "keep.safetensors"});
  CHECK(cg::testing::dir_entries(tmp.dir / "adir") == std::vector<std::string>{"inner"});
}

// ---- llama2.c ---------------------------------------------------------------------------

TEST_CASE("llama2c: stories260K loads with the documented config and HF names") {
  if (!cg::testing::have_file(kStoriesBin)) return;
  Checkpoint ck = read_llama2c(kStoriesBin);
  const LlamaConfig& c = ck.config;
  CHECK(c.dim == 64);
  CHECK(c.hidden_dim == 172);
  CHECK(c.n_layers == 5);
  CHECK(c.n_heads == 8);
  CHECK(c.n_kv_heads == 4);
  CHECK(c.vocab_size == 512);
  CHECK(c.seq_len == 512);
  CHECK(c.tied_embeddings);
  CHECK_NOTHROW(check_checkpoint(ck, "stories260K"));
  CHECK(ck.tensors.size() == 2 + 9 * 5 + 1);
  CHECK(ck.tensors.front().first == "model.embed_tokens.weight");
  CHECK(ck.get("model.layers.4.self_attn.k_proj.weight").shape() == Shape{32, 64});
  CHECK(ck.get("model.layers.0.mlp.down_proj.weight").shape() == Shape{64, 172});
  CHECK(bits_equal(ck.get("lm_head.weight"), ck.get("model.embed_tokens.weight")));
  CHECK_FALSE(ck.get("lm_head.weight").storage() == ck.get("model.embed_tokens.weight").storage());

  // Independent look at the raw file: layer 1's wq, wk and w2 by offset arithmetic.
  const std::vector<uint8_t> raw = read_file_bytes(kStoriesBin);
  auto raw_at = [&](int64_t float_index) {
    float f;
    std::memcpy(&f, raw.data() + 28 + 4 * float_index, 4);
    return f;
  };
  const int64_t V = 512, D = 64, L = 5, KV = 32, H = 172, hd = 8;
  const int64_t wq0 = V * D + L * D, wk0 = wq0 + L * D * D, w1_0 = wk0 + 2 * L * KV * D + L * D * D + L * D;
  const int64_t w2_0 = w1_0 + L * H * D;
  const float* q = ck.get("model.layers.1.self_attn.q_proj.weight").data<float>();
  const float* k = ck.get("model.layers.1.self_attn.k_proj.weight").data<float>();
  const float* down = ck.get("model.layers.1.mlp.down_proj.weight").data<float>();
  for (int64_t head = 0; head < 8; ++head)
    for (int64_t i = 0; i < hd / 2; ++i)
      for (int64_t col : {0, 17, 63}) {
        CHECK(q[(head * hd + i) * D + col] == raw_at(wq0 + D * D + (head * hd + 2 * i) * D + col));
        CHECK(q[(head * hd + hd / 2 + i) * D + col] == raw_at(wq0 + D * D + (head * hd + 2 * i + 1) * D + col));
        if (head < 4)
          CHECK(k[(head * hd + hd / 2 + i) * D + col] == raw_at(wk0 + KV * D + (head * hd + 2 * i + 1) * D + col));
      }
  CHECK(down[5 * H + 100] == raw_at(w2_0 + D * H + 5 * H + 100));

  // A copy in memory parses to the same tensors.
  check_same_checkpoint(parse_llama2c(raw.data(), raw.size(), "mem"), ck);
}

TEST_CASE("llama2c: truncated, oversized and garbage files are FormatErrors") {
  TempDir tmp;
  std::vector<uint8_t> good;
  if (fs::exists(kStoriesBin)) {
    good = read_file_bytes(kStoriesBin);
  } else {
    MESSAGE("stories260K absent: using a synthetic checkpoint");
    good = serialize_llama2c(random_checkpoint(tiny_config(true), 3));
  }
  auto fails_file = [&](const std::vector<uint8_t>& b, const char* needle) {
    const std::string path = tmp.path("bad.bin");
    write_file_atomic(path, b);
    const std::string msg = throws_message([&] { read_llama2c(path); });
    const std::string info = std::string("wanted '") + needle + "' in: '" + msg + "'";
    CHECK_MESSAGE(msg.find(needle) != std::string::npos, info);
  };
  fails_file(std::vector<uint8_t>(good.begin(), good.end() - 4), "needs exactly");
  fails_file(std::vector<uint8_t>(good.begin(), good.begin() + good.size() / 2), "truncated");
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  fails_file(longer, "needs exactly");
  fails_file(std::vector<uint8_t>(good.begin(), good.begin() + 20), "too short");
  std::vector<uint8_t> negated = good;  // vocab < 0 claims a separate classifier that is not there
  int32_t vocab;
  std::memcpy(&vocab, negated.data() + 20, 4);
  vocab = -vocab;
  std::memcpy(negated.data() + 20, &vocab, 4);
  fails_file(negated, "needs exactly");
  std::vector<uint8_t> garbage = good;
  const int32_t huge = 1 << 30;
  std::memcpy(garbage.data(), &huge, 4);
  fails_file(garbage, "out of range");
  std::vector<uint8_t> odd_heads = good;
  const int32_t seven = 7;
  std::memcpy(odd_heads.data() + 12, &seven, 4);
  fails_file(odd_heads, "not divisible");
  std::vector<uint8_t> magic = good;
  const int32_t ak42 = 0x616b3432;
  std::memcpy(magic.data(), &ak42, 4);
  fails_file(magic, "not supported");
  CHECK_THROWS_AS(read_llama2c(tmp.path("missing.bin")), FormatError);
  CHECK_THROWS_AS(read_checkpoint(tmp.path("model.pt")), FormatError);
}

TEST_CASE("llama2c: write/read round trip, tied and untied") {
  for (bool tied : {true, false}) {
    CAPTURE(tied);
    Checkpoint ck = random_checkpoint(tiny_config(tied), tied ? 11 : 12);
    const std::vector<uint8_t> bytes = serialize_llama2c(ck);
    const LlamaConfig& c = ck.config;
    const int64_t floats =
        c.vocab_size * c.dim * (tied ? 1 : 2) +
        c.n_layers * (2 * c.dim + 2 * c.dim * c.dim + 2 * c.kv_dim() * c.dim + 3 * c.dim * c.hidden_dim) + c.dim +
        c.seq_len * c.head_dim();
    CHECK(bytes.size() == static_cast<size_t>(28 + 4 * floats));
    check_same_checkpoint(parse_llama2c(bytes.data(), bytes.size(), "rt"), ck);
    TempDir tmp;
    write_llama2c(tmp.path("m.bin"), ck);
    check_same_checkpoint(read_checkpoint(tmp.path("m.bin")), ck);
  }
  Checkpoint bad = random_checkpoint(tiny_config(true), 5);
  bad.config.rope_theta = 500000;
  CHECK_THROWS_AS(serialize_llama2c(bad), FormatError);
}

TEST_CASE("llama2c: q/k permutation turns interleaved RoPE into rotate-half RoPE") {
  // q = W·x for a row-permuted W must rotate under rotate-half RoPE exactly as the
  // original rows do under llama2.c's interleaved RoPE, element for element after the
  // same permutation, so attention scores q·k are unchanged.
  Rng rng(99);
  const int64_t n_heads = 3, hd = 8, in = 5, half = hd / 2;
  const Tensor wq = rand_normal({n_heads * hd, in}, 0, 1, rng), wk = rand_normal({n_heads * hd, in}, 0, 1, rng);
  const Tensor pq = permute_interleaved_to_half(wq, n_heads), pk = permute_interleaved_to_half(wk, n_heads);
  CHECK(bits_equal(permute_half_to_interleaved(pq, n_heads), wq));
  const std::vector<double> x = rand_normal({in}, 0, 1, rng).to_f64_vector();
  auto matvec = [&](const Tensor& w) {
    std::vector<double> y(static_cast<size_t>(n_heads * hd), 0.0);
    const std::vector<double> wv = w.to_f64_vector();
    for (int64_t r = 0; r < n_heads * hd; ++r)
      for (int64_t c = 0; c < in; ++c) y[r] += wv[r * in + c] * x[c];
    return y;
  };
  auto freq = [&](int64_t i) { return std::pow(10000.0, -2.0 * static_cast<double>(i) / hd); };
  auto rope_interleaved = [&](std::vector<double> v, int pos) {  // pairs (2i, 2i+1)
    for (int64_t h = 0; h < n_heads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const double a = pos * freq(i), c = std::cos(a), s = std::sin(a);
        double& x0 = v[h * hd + 2 * i];
        double& x1 = v[h * hd + 2 * i + 1];
        const double r0 = x0 * c - x1 * s, r1 = x0 * s + x1 * c;
        x0 = r0;
        x1 = r1;
      }
    return v;
  };
  auto rope_half = [&](std::vector<double> v, int pos) {  // pairs (i, i + hd/2)
    for (int64_t h = 0; h < n_heads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const double a = pos * freq(i), c = std::cos(a), s = std::sin(a);
        double& x0 = v[h * hd + i];
        double& x1 = v[h * hd + half + i];
        const double r0 = x0 * c - x1 * s, r1 = x0 * s + x1 * c;
        x0 = r0;
        x1 = r1;
      }
    return v;
  };
  for (int pos : {0, 1, 7, 300}) {
    CAPTURE(pos);
    const auto q_orig = rope_interleaved(matvec(wq), pos), q_perm = rope_half(matvec(pq), pos);
    const auto k_orig = rope_interleaved(matvec(wk), pos + 3), k_perm = rope_half(matvec(pk), pos + 3);
    double max_diff = 0;
    for (int64_t h = 0; h < n_heads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        max_diff = std::max(max_diff, std::abs(q_perm[h * hd + i] - q_orig[h * hd + 2 * i]));
        max_diff = std::max(max_diff, std::abs(q_perm[h * hd + half + i] - q_orig[h * hd + 2 * i + 1]));
      }
    CHECK(max_diff < 1e-12);
    for (int64_t h = 0; h < n_heads; ++h) {
      double s_orig = 0, s_perm = 0;
      for (int64_t j = 0; j < hd; ++j) {
        s_orig += q_orig[h * hd + j] * k_orig[h * hd + j];
        s_perm += q_perm[h * hd + j] * k_perm[h * hd + j];
      }
      CHECK(s_perm == doctest::Approx(s_orig).epsilon(1e-12));
    }
  }
  // Without the permutation rotate-half RoPE would give different scores (the test can fail).
  const auto q_wrong = rope_half(matvec(wq), 5), k_wrong = rope_half(matvec(wk), 8);
  const auto q_orig = rope_interleaved(matvec(wq), 5), k_orig = rope_interleaved(matvec(wk), 8);
  double s_wrong = 0, s_orig = 0;
  for (int64_t j = 0; j < hd; ++j) {
    s_wrong += q_wrong[j] * k_wrong[j];
    s_orig += q_orig[j] * k_orig[j];
  }
  CHECK(std::abs(s_wrong - s_orig) > 1e-6);
}

// ---- HF Llama safetensors ---------------------------------------------------------------

TEST_CASE("hf_llama: write/read round trip with exact HF names, tied and untied") {
  TempDir tmp;
  for (bool tied : {true, false}) {
    CAPTURE(tied);
    Checkpoint ck = random_checkpoint(tiny_config(tied), 21);
    const std::string path = tmp.path(tied ? "tied.safetensors" : "untied.safetensors");
    write_hf_llama(path, ck);
    CHECK(cg::testing::safetensors_file_problem(path) == "");
    SafeTensors st = read_safetensors(path);
    CHECK(st.metadata.at("format") == "pt");
    CHECK(nlohmann::json::parse(st.metadata.at("config"))["num_attention_heads"] == 4);
    std::vector<std::string> want;
    for (const TensorSpec& s : hf_llama_tensor_specs(ck.config)) {
      if (s.name == "lm_head.weight" && tied) continue;
      want.push_back(s.name);
      CHECK(st.tensors.at(s.name).shape() == s.shape);
    }
    CHECK(st.names == want);
    check_same_checkpoint(read_checkpoint(path), ck);
  }
}

TEST_CASE("llama2c → safetensors → load keeps every stories260K tensor") {
  if (!cg::testing::have_file(kStoriesBin)) return;
  TempDir tmp;
  Checkpoint ck = read_llama2c(kStoriesBin);
  write_hf_llama(tmp.path("s.safetensors"), ck);
  check_same_checkpoint(read_hf_llama(tmp.path("s.safetensors")), ck);
  write_llama2c(tmp.path("s.bin"), ck);  // and back to llama2.c: the weights are byte-identical
  const std::vector<uint8_t> a = read_file_bytes(kStoriesBin), b = read_file_bytes(tmp.path("s.bin"));
  REQUIRE(a.size() == b.size());
  const size_t freq_start = 28 + 4 * static_cast<size_t>(ck.config.param_count() - 0);
  CHECK(std::memcmp(a.data(), b.data(), freq_start) == 0);
}

TEST_CASE("hf_llama: missing, extra or mis-shaped tensors and missing config are FormatErrors") {
  TempDir tmp;
  Checkpoint ck = random_checkpoint(tiny_config(false), 31);
  const std::string meta_cfg = ck.config.to_hf_json().dump();
  auto write_and_fail = [&](std::vector<std::pair<std::string, Tensor>> ts, std::map<std::string, std::string> meta,
                            const char* needle) {
    const std::string path = tmp.path("bad.safetensors");
    write_safetensors(path, ts, meta);
    const std::string msg = throws_message([&] { read_hf_llama(path); });
    const std::string info = std::string("wanted '") + needle + "' in: '" + msg + "'";
    CHECK_MESSAGE(msg.find(needle) != std::string::npos, info);
  };
  const std::map<std::string, std::string> meta = {{"config", meta_cfg}};
  auto without = [&](const std::string& name) {
    auto ts = ck.tensors;
    std::erase_if(ts, [&](const auto& p) { return p.first == name; });
    return ts;
  };
  write_and_fail(without("model.layers.1.mlp.up_proj.weight"), meta,
                 "missing tensor 'model.layers.1.mlp.up_proj.weight'");
  write_and_fail(without("lm_head.weight"), meta, "missing tensor 'lm_head.weight'");
  auto extra = ck.tensors;
  extra.emplace_back("model.layers.2.input_layernorm.weight", Tensor::zeros({8}));
  write_and_fail(extra, meta, "unexpected tensor 'model.layers.2.input_layernorm.weight'");
  auto misshaped = without("model.norm.weight");
  misshaped.emplace_back("model.norm.weight", Tensor::zeros({9}));
  write_and_fail(misshaped, meta, "'model.norm.weight' has shape [9]");
  write_and_fail(ck.tensors, {}, "n_heads cannot be inferred");
  write_and_fail(ck.tensors, {{"config", "{oops"}}, "bad JSON");

  // HF folder layout: config.json beside the file is used when the metadata has none.
  fs::create_directories(tmp.path("hf"));
  {
    std::ofstream cfg(tmp.path("hf/config.json"));
    cfg << meta_cfg;
  }
  write_safetensors(tmp.path("hf/model.safetensors"), ck.tensors, {});
  check_same_checkpoint(read_hf_llama(tmp.path("hf/model.safetensors")), ck);

  // The writer checks too.
  Checkpoint broken = ck;
  broken.tensors.pop_back();
  CHECK_THROWS_AS(write_hf_llama(tmp.path("w.safetensors"), broken), FormatError);
  CHECK_FALSE(fs::exists(tmp.path("w.safetensors")));
  Checkpoint tied_diff = random_checkpoint(tiny_config(false), 32);
  tied_diff.config.tied_embeddings = true;
  CHECK_THROWS_AS(write_hf_llama(tmp.path("w.safetensors"), tied_diff), FormatError);
}
