// tests/test_tokenizer_json.cpp — tokenizer.json / GGUF-vocab BPE against HF `tokenizers`
// (tests/golden/tokenizer_json.json: ids of a varied text with Unicode, digits, whitespace runs
// and special tokens), the round trip, the Unicode classes, refused configurations, and the
// chat renderers.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "models/io/file_io.h"
#include "models/text/chat_template.h"
#include "models/text/tokenizer_json.h"
#include "models/text/unicode.h"
#include "tests/skip.h"
#include "tests/test_util.h"

using namespace cg;
using namespace cg::models;
namespace fs = std::filesystem;

namespace {

std::string decode_all(const Tokenizer& t, const std::vector<int>& ids) {
  std::string s;
  for (size_t k = 0; k < ids.size(); ++k) s += t.decode_piece(k ? ids[k - 1] : -1, ids[k]);
  return s;
}

}  // namespace

TEST_CASE("tokenizer.json: SmolLM2 (byte-level), its GGUF vocabulary and Llama-2 (SentencePiece) equal HF tokenizers") {
  const nlohmann::json g = cg::testing::read_golden_json("tokenizer_json.json");
  const std::string text = g["text"].get<std::string>();
  struct Case {
    std::string path, key;
  };
  for (const Case& c : {Case{"../shared/data/smollm2/tokenizer.json", "smollm2"},
                        Case{"../shared/data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2"},
                        Case{"../shared/data/llama2_tokenizer/tokenizer.json", "llama2"}}) {
    INFO(c.path);
    if (!cg::testing::have_file(c.path)) continue;
    auto tok = load_tokenizer(c.path, 0);
    const std::vector<int> ids = tok->encode(text, false, false);
    CHECK(ids == g[c.key].get<std::vector<int>>());
    if (c.key == "smollm2") CHECK(decode_all(*tok, ids) == text);
    // SentencePiece-style: the Prepend normalizer puts "▁" after every added token, so only
    // text without added tokens round-trips exactly (HF decodes it the same way).
    const std::string plain = text.substr(0, text.find("Special tokens"));
    CHECK(tok->decode(tok->encode(plain, false, false)) == plain);
    // Bytes that are not UTF-8 go through byte for byte (SmolLM2's vocabulary has no
    // characters for 0xF5..0xFF, which UTF-8 never uses, so only Llama-2 takes those).
    const std::string odd = c.key == "llama2" ? "a \xff\xfe b \xe2\x82" : "a \x80\xbf b \xe2\x82";
    CHECK(decode_all(*tok, tok->encode(odd, false, false)) == odd);
  }
}

TEST_CASE("tokenizer.json: BOS/EOS and add_bos from the file") {
  if (!cg::testing::have_file("../shared/data/llama2_tokenizer/tokenizer.json")) return;
  const HfBpeTokenizer l = HfBpeTokenizer::read("../shared/data/llama2_tokenizer/tokenizer.json");
  CHECK(l.bos_id() == 1);
  CHECK(l.eos_id() == 2);
  CHECK(l.add_bos());  // its TemplateProcessing post-processor puts <s> first
  CHECK(l.encode("Hi", true, false).front() == 1);
  CHECK(l.piece(13) == "<0x0A>");
  CHECK(l.decode_piece(1, l.token_id("\xE2\x96\x81Hello")) == "Hello");  // leading space dropped after BOS
}

TEST_CASE("unicode: the pre-tokenizer classes") {
  using namespace cg::models::unicode;
  CHECK(is_letter('a'));
  CHECK(is_letter(0x00E9));  // é
  CHECK(is_letter(0x4E2D));  // 中
  CHECK_FALSE(is_letter('1'));
  CHECK(is_number('7'));
  CHECK(is_number(0x0663));  // Arabic-Indic three
  CHECK(is_number(0x00BD));  // ½ (No)
  CHECK(is_number(0x216B));  // Ⅻ (Nl)
  CHECK_FALSE(is_number('x'));
  CHECK(is_space(0x00A0));
  CHECK(is_space(0x2028));
  CHECK_FALSE(is_space(0x200B));  // zero-width space is not White_Space
  size_t len;
  CHECK(decode_utf8("\xF0\x9F\x98\x80", 0, len) == 0x1F600);
  CHECK(len == 4);
  CHECK(decode_utf8("\xC0\xAF", 0, len) == kInvalid);  // overlong
  CHECK(len == 1);
}

TEST_CASE("tokenizer.json: unsupported or broken files are refused") {
  auto base = [] {
    return nlohmann::json::parse(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
      "normalizer": null, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
      "added_tokens": []})");
  };
  CHECK(HfBpeTokenizer::from_json(base(), "t").encode("ab", false, false) == std::vector<int>{2});
  auto j = base();
  j["model"]["type"] = "WordPiece";
  CHECK_THROWS_AS(HfBpeTokenizer::from_json(j, "t"), FormatError);
  j = base();
  j["model"]["merges"] = {"a c"};
  CHECK_THROWS_AS(HfBpeTokenizer::from_json(j, "t"), FormatError);
  j = base();
  j["normalizer"] = nlohmann::json::parse(R"({"type": "NFKC"})");
  CHECK_THROWS_AS(HfBpeTokenizer::from_json(j, "t"), FormatError);
  j = base();
  j["model"]["vocab"]["c"] = 7;  // a hole in the ids
  CHECK_THROWS_AS(HfBpeTokenizer::from_json(j, "t"), FormatError);
  j = base();
  j.erase("pre_tokenizer");
  CHECK_THROWS_AS(HfBpeTokenizer::from_json(j, "t"), FormatError);  // neither byte-level nor SentencePiece
}

TEST_CASE("chat templates: family detection and the five renderers") {
  const std::string smol =
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
      "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
      "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
  CHECK(detect_chat_format(smol) == ChatFormat::ChatML);
  CHECK(render_chat(ChatFormat::ChatML, smol, {{"user", "Hi"}}, true) ==
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  CHECK(render_chat(ChatFormat::ChatML, smol, {{"system", "Be brief."}, {"user", "Hi"}}, true) ==
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  CHECK(render_chat(ChatFormat::Llama2, "", {{"system", "S"}, {"user", "Hi"}}, true) ==
        "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nHi [/INST]");
  CHECK(render_chat(ChatFormat::Llama3, "", {{"user", "Hi"}}, true) ==
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n");
  CHECK(render_chat(ChatFormat::Zephyr, "", {{"user", "Hi"}}, true) == "<|user|>\nHi</s>\n<|assistant|>\n");
  CHECK(render_chat(ChatFormat::Gemma, "", {{"user", "Hi"}}, true) ==
        "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
  CHECK(detect_chat_format("{{ '<|start_header_id|>' }}") == ChatFormat::Llama3);
  CHECK(detect_chat_format("<start_of_turn>") == ChatFormat::Gemma);
  CHECK(detect_chat_format("<|user|>") == ChatFormat::Zephyr);
  CHECK(detect_chat_format("[INST]") == ChatFormat::Llama2);
  CHECK_THROWS_AS(detect_chat_format("{{ messages }}"), FormatError);
  CHECK_THROWS_AS(detect_chat_format(""), FormatError);
  CHECK_THROWS_AS(chat_format_by_name("vicuna"), FormatError);
}
