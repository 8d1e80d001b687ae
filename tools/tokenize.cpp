// tools/tokenize.cpp — print the token ids of a text file (no BOS/EOS added; added tokens
// in the text, such as "<|im_end|>", are still matched), optionally with the pieces, and
// check that decoding them gives the file back.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "models/io/file_io.h"
#include "models/text/tokenizer.h"
#include "tools/common/cli.h"

int main(int argc, char** argv) {
  CLI::App app{"Tokenize a text file: one id per line (or {\"ids\": [...]} with --json).", "tokenize"};
  std::string tok_path, file;
  bool json = false, pieces = false, check = false;
  app.add_option("--tokenizer", tok_path,
                 "a tokenizer.json, a .gguf (its vocabulary), a Hugging Face folder, a llama2.c tok*.bin, or 'byte'")
      ->required();
  app.add_option("--file", file, "text file")->required();
  app.add_flag("--json", json, "print {\"ids\": [...]} (with --pieces also \"pieces\")");
  app.add_flag("--pieces", pieces, "also print each token as the vocabulary stores it");
  app.add_flag("--check", check, "exit 1 unless decode(encode(text)) equals the text (reported on stderr)");
  return cg::tools::run_tool(app, argc, argv, [&] {
    auto tok = cg::models::load_tokenizer(tok_path, 0);
    const std::vector<uint8_t> bytes = cg::models::read_file_bytes(file);
    const std::string text(bytes.begin(), bytes.end());
    const std::vector<int> ids = tok->encode(text, false, false);
    if (json) {
      nlohmann::json out{{"ids", ids}};
      if (pieces) {
        std::vector<std::string> ps;
        for (int id : ids) ps.push_back(tok->piece(id));
        out["pieces"] = ps;
      }
      std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      for (int id : ids) {
        if (pieces)
          std::printf(
              "%d\t%s\n", id,
              nlohmann::json(tok->piece(id)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
        else std::printf("%d\n", id);
      }
    }
    if (check) {
      std::string back;  // every id decoded, special tokens included
      for (size_t k = 0; k < ids.size(); ++k) back += tok->decode_piece(k > 0 ? ids[k - 1] : -1, ids[k]);
      const bool same = back == text;
      std::fprintf(stderr, "tokenize: %zu tokens, decode(encode(text)) %s the text\n", ids.size(),
                   same ? "equals" : "DIFFERS FROM");
      return same ? 0 : 1;
    }
    return 0;
  });
}
