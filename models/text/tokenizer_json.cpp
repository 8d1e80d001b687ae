// models/text/tokenizer_json.cpp — HF-style BPE: configuration from tokenizer.json / GGUF,
// added-token splitting, the pre-tokenizers, BPE merges by rank, decoding.
#include "models/text/tokenizer_json.h"

#include <filesystem>
#include <queue>

#include "engine/error.h"
#include "models/io/file_io.h"
#include "models/io/gguf.h"
#include "models/text/unicode.h"

namespace cg::models {

namespace {

using unicode::decode_utf8;
using unicode::is_letter;
using unicode::is_number;
using unicode::is_space;

constexpr const char* kMeta = "\xE2\x96\x81";  // U+2581 "▁"

// GPT-2's byte ↔ character map: printable Latin-1 bytes stand for themselves, the other 68
// bytes (controls, space, DEL, NBSP, soft hyphen ...) map to U+0100.. in byte order.
const std::vector<uint32_t>& byte_to_cp() {
  static const std::vector<uint32_t> table = [] {
    std::vector<uint32_t> t(256);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      t[b] = keep ? b : next++;
    }
    return t;
  }();
  return table;
}

int cp_to_byte(uint32_t cp) {
  static const std::unordered_map<uint32_t, int> inv = [] {
    std::unordered_map<uint32_t, int> m;
    for (int b = 0; b < 256; ++b) m.emplace(byte_to_cp()[static_cast<size_t>(b)], b);
    return m;
  }();
  auto it = inv.find(cp);
  return it == inv.end() ? -1 : it->second;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  size_t i = 0;
  while (true) {
    const size_t j = s.find(from, i);
    if (j == std::string::npos) break;
    out.append(s, i, j - i);
    out += to;
    i = j + from.size();
  }
  out.append(s, i, std::string::npos);
  return out;
}

// The GPT-2 split pattern over `s`, by hand: at each position the first alternative that
// matches wins, as the regex engine would choose.
void gpt2_split(const std::string& s, std::vector<std::string>& out) {
  struct Ch {
    uint32_t cp;
    size_t at;
  };
  std::vector<Ch> cs;
  for (size_t i = 0; i < s.size();) {
    size_t len;
    const uint32_t cp = decode_utf8(s, i, len);
    cs.push_back({cp, i});
    i += len;
  }
  const size_t n = cs.size();
  auto at = [&](size_t k) { return k < n ? cs[k].at : s.size(); };
  auto other = [&](uint32_t cp) { return !is_space(cp) && !is_letter(cp) && !is_number(cp); };
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    const uint32_t c = cs[i].cp;
    // 's 't 're 've 'm 'll 'd
    if (c == '\'' && i + 1 < n) {
      const uint32_t a = cs[i + 1].cp, b = i + 2 < n ? cs[i + 2].cp : 0;
      if (a == 's' || a == 't' || a == 'm' || a == 'd') j = i + 2;
      else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) j = i + 3;
    }
    if (j == i) {
      const size_t k = (c == ' ' && i + 1 < n) ? i + 1 : i;  // the optional leading space
      const uint32_t d = cs[k].cp;
      if (is_letter(d)) {
        j = k;
        while (j < n && is_letter(cs[j].cp)) ++j;
      } else if (is_number(d)) {
        j = k;
        while (j < n && is_number(cs[j].cp)) ++j;
      } else if (other(d)) {
        j = k;
        while (j < n && other(cs[j].cp)) ++j;
      } else {  // whitespace: \s+(?!\S) then \s+
        size_t e = i;
        while (e < n && is_space(cs[e].cp)) ++e;
        j = (e == n || e - i == 1) ? e : e - 1;
      }
    }
    out.push_back(s.substr(at(i), at(j) - at(i)));
    i = j;
  }
}

// Digits(individual_digits=true): every numeric character is a piece of its own.
void split_digits(const std::string& s, std::vector<std::string>& out) {
  size_t start = 0;
  for (size_t i = 0; i < s.size();) {
    size_t len;
    const uint32_t cp = decode_utf8(s, i, len);
    if (is_number(cp)) {
      if (i > start) out.push_back(s.substr(start, i - start));
      out.push_back(s.substr(i, len));
      start = i + len;
    }
    i += len;
  }
  if (start < s.size()) out.push_back(s.substr(start));
}

nlohmann::json parse_json_text(const std::string& text, const std::string& what) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& ex) {
    throw FormatError(what + ": bad JSON: " + ex.what());
  }
}

std::string json_token_text(const nlohmann::json& v) {  // "text" or {"content": "text"}
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

bool jbool(const nlohmann::json& j, const char* key, bool fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

}  // namespace

HfBpeTokenizer::HfBpeTokenizer(std::vector<std::string> vocab,
                               const std::vector<std::pair<std::string, std::string>>& merges,
                               std::vector<AddedToken> added, Options options, const std::string& what)
    : vocab_(std::move(vocab)), added_(std::move(added)), opt_(std::move(options)) {
  const int V = static_cast<int>(vocab_.size());
  if (V < 1) throw FormatError(what + ": empty vocabulary");
  index_.reserve(vocab_.size());
  for (int i = 0; i < V; ++i) index_.emplace(vocab_[static_cast<size_t>(i)], i);
  merges_.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto& [a, b] = merges[r];
    const int ia = token_id_raw(a), ib = token_id_raw(b), im = token_id_raw(a + b);
    if (ia < 0 || ib < 0 || im < 0)
      throw FormatError(what + ": merge " + std::to_string(r) + " ('" + a + "' '" + b +
                        "') uses a piece not in the vocab");
    merges_.emplace((static_cast<uint64_t>(ia) << 32) | static_cast<uint32_t>(ib),
                    std::make_pair(static_cast<int>(r), im));
  }
  is_added_.assign(vocab_.size(), 0);
  for (const AddedToken& t : added_) {
    if (t.id < 0 || t.id >= V)
      throw FormatError(what + ": added token '" + t.content + "' has id " + std::to_string(t.id) +
                        " outside the vocab");
    if (t.content.empty()) throw FormatError(what + ": added token " + std::to_string(t.id) + " is empty");
    is_added_[static_cast<size_t>(t.id)] = 1;
  }
  for (int id : {opt_.bos, opt_.eos, opt_.unk_id})
    if (id >= V) throw FormatError(what + ": special token id " + std::to_string(id) + " is outside the vocab");
  decoded_.resize(vocab_.size());
  for (int i = 0; i < V; ++i) {
    const std::string& p = vocab_[static_cast<size_t>(i)];
    std::string& d = decoded_[static_cast<size_t>(i)];
    if (is_added_[static_cast<size_t>(i)]) {
      d = p;
    } else if (opt_.kind == Kind::ByteLevel) {
      for (size_t k = 0; k < p.size();) {
        size_t len;
        const uint32_t cp = decode_utf8(p, k, len);
        const int b = cp_to_byte(cp);
        if (b >= 0) d.push_back(static_cast<char>(b));
        else d.append(p, k, len);  // not a byte character: kept as it is
        k += len;
      }
    } else {
      unsigned v = 0;
      if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' && std::sscanf(p.c_str() + 3, "%2x", &v) == 1)
        d = std::string(1, static_cast<char>(v));
      else d = replace_all(p, kMeta, " ");
    }
  }
}

int HfBpeTokenizer::token_id_raw(const std::string& piece) const {
  auto it = index_.find(piece);
  return it == index_.end() ? -1 : it->second;
}

int HfBpeTokenizer::token_id(const std::string& piece) const { return token_id_raw(piece); }

std::string HfBpeTokenizer::piece(int id) const {
  if (id < 0 || id >= vocab_size()) throw FormatError("token id " + std::to_string(id) + " is outside the vocab");
  return vocab_[static_cast<size_t>(id)];
}

std::string HfBpeTokenizer::decode_piece(int prev, int token) const {
  if (token < 0 || token >= vocab_size())
    throw FormatError("HfBpeTokenizer::decode: token id " + std::to_string(token) + " is outside [0, " +
                      std::to_string(vocab_size()) + ")");
  const std::string& d = decoded_[static_cast<size_t>(token)];
  if (opt_.kind == Kind::SentencePiece && (prev < 0 || prev == opt_.bos) && !d.empty() && d[0] == ' ' &&
      !is_added_[static_cast<size_t>(token)])
    return d.substr(1);
  return d;
}

// BPE over one word: initial symbols, then the lowest-rank adjacent pair is merged
// (leftmost among equals) until no pair has a merge, as tokenizers' Word::merge_all.
void HfBpeTokenizer::bpe_word(const std::string& word, std::vector<int>& out) const {
  if (word.empty()) return;
  if (opt_.ignore_merges) {
    const int id = token_id_raw(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  std::vector<int> sym;
  std::string ch;
  for (size_t i = 0; i < word.size();) {
    size_t len;
    decode_utf8(word, i, len);
    ch.assign(word, i, len);
    i += len;
    const int id = token_id_raw(ch);
    if (id >= 0) {
      sym.push_back(id);
      continue;
    }
    bool done = false;
    if (opt_.byte_fallback) {
      std::vector<int> bytes;
      for (unsigned char b : ch) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        const int bid = token_id_raw(name);
        if (bid < 0) break;
        bytes.push_back(bid);
      }
      if (bytes.size() == ch.size()) {
        sym.insert(sym.end(), bytes.begin(), bytes.end());
        done = true;
      }
    }
    if (!done) {
      if (opt_.unk_id < 0)
        throw FormatError("tokenizer: character '" + ch + "' is not in the vocabulary and there is no unk token");
      if (!(opt_.fuse_unk && !sym.empty() && sym.back() == opt_.unk_id)) sym.push_back(opt_.unk_id);
    }
  }
  const int n = static_cast<int>(sym.size());
  std::vector<int> prev(static_cast<size_t>(n)), next(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    prev[static_cast<size_t>(i)] = i - 1;
    next[static_cast<size_t>(i)] = i + 1 < n ? i + 1 : -1;
  }
  struct Cand {
    int rank, pos, merged;
  };
  auto worse = [](const Cand& a, const Cand& b) { return a.rank > b.rank || (a.rank == b.rank && a.pos > b.pos); };
  std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> heap(worse);
  auto consider = [&](int left) {
    if (left < 0) return;
    const int right = next[static_cast<size_t>(left)];
    if (right < 0) return;
    auto it = merges_.find((static_cast<uint64_t>(sym[static_cast<size_t>(left)]) << 32) |
                           static_cast<uint32_t>(sym[static_cast<size_t>(right)]));
    if (it != merges_.end()) heap.push({it->second.first, left, it->second.second});
  };
  std::vector<char> alive(static_cast<size_t>(n), 1);
  for (int i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    const size_t l = static_cast<size_t>(c.pos);
    if (!alive[l]) continue;
    const int right = next[l];
    if (right < 0) continue;
    auto it =
        merges_.find((static_cast<uint64_t>(sym[l]) << 32) | static_cast<uint32_t>(sym[static_cast<size_t>(right)]));
    if (it == merges_.end() || it->second.first != c.rank || it->second.second != c.merged) continue;  // stale
    sym[l] = c.merged;
    alive[static_cast<size_t>(right)] = 0;
    next[l] = next[static_cast<size_t>(right)];
    if (next[l] >= 0) prev[static_cast<size_t>(next[l])] = c.pos;
    consider(prev[l]);
    consider(c.pos);
  }
  for (int i = 0; i >= 0 && n > 0; i = next[static_cast<size_t>(i)]) out.push_back(sym[static_cast<size_t>(i)]);
}

void HfBpeTokenizer::encode_segment(const std::string& seg, bool first, std::vector<int>& out,
                                    std::unordered_map<std::string, std::vector<int>>& cache) const {
  if (seg.empty()) return;
  if (opt_.kind == Kind::SentencePiece) {
    std::string s = replace_all(seg, " ", kMeta);
    const bool starts_meta = s.compare(0, 3, kMeta) == 0;
    if (opt_.prepend_normalizer) s = kMeta + s;
    else if (opt_.metaspace && !starts_meta &&
             (opt_.prepend_scheme == "always" || (opt_.prepend_scheme == "first" && first)))
      s = kMeta + s;
    if (!opt_.metaspace_split) {
      bpe_word(s, out);
      return;
    }
    size_t start = 0;  // split before every "▁" (MergedWithNext)
    for (size_t i = 1; i + 3 <= s.size(); ++i)
      if (s.compare(i, 3, kMeta) == 0) {
        bpe_word(s.substr(start, i - start), out);
        start = i;
      }
    bpe_word(s.substr(start), out);
    return;
  }
  std::vector<std::string> parts, words;
  if (opt_.individual_digits) split_digits(seg, parts);
  else parts.push_back(seg);
  for (std::string& p : parts) {
    if (opt_.add_prefix_space && p[0] != ' ') p = " " + p;
    if (opt_.split_regex) gpt2_split(p, words);
    else words.push_back(p);
  }
  const std::vector<uint32_t>& map = byte_to_cp();
  std::string mapped;
  for (const std::string& w : words) {
    auto it = cache.find(w);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      continue;
    }
    mapped.clear();
    for (unsigned char b : w) unicode::append_utf8(mapped, map[b]);
    std::vector<int> ids;
    bpe_word(mapped, ids);
    out.insert(out.end(), ids.begin(), ids.end());
    if (w.size() < 64) cache.emplace(w, std::move(ids));
  }
}

std::vector<int> HfBpeTokenizer::encode(const std::string& text, bool bos, bool eos) const {
  std::vector<int> out;
  if (bos && opt_.bos >= 0) out.push_back(opt_.bos);
  std::unordered_map<std::string, std::vector<int>> cache;
  // Added tokens first: at each position the longest one that matches.
  size_t seg_start = 0, i = 0;
  bool first = true;
  auto flush = [&](size_t end) {
    if (end > seg_start) {
      encode_segment(text.substr(seg_start, end - seg_start), first, out, cache);
      first = false;
    }
  };
  while (i < text.size()) {
    const AddedToken* best = nullptr;
    for (const AddedToken& t : added_)
      if (text.compare(i, t.content.size(), t.content) == 0 && (!best || t.content.size() > best->content.size()))
        best = &t;
    if (!best) {
      ++i;
      continue;
    }
    size_t left = i, right = i + best->content.size();
    if (best->lstrip)
      while (left > seg_start && std::isspace(static_cast<unsigned char>(text[left - 1]))) --left;
    if (best->rstrip)
      while (right < text.size() && std::isspace(static_cast<unsigned char>(text[right]))) ++right;
    flush(left);
    out.push_back(best->id);
    first = false;
    seg_start = i = right;
  }
  flush(text.size());
  if (eos && opt_.eos >= 0) out.push_back(opt_.eos);
  return out;
}

HfBpeTokenizer HfBpeTokenizer::from_json(const nlohmann::json& j, const std::string& what) {
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
    throw FormatError(what + ": not a tokenizer.json (no \"model\" object)");
  const nlohmann::json& m = j["model"];
  if (m.value("type", std::string("BPE")) != "BPE")
    throw FormatError(what + ": model type " + m["type"].dump() + " is not supported (BPE only)");
  if (!m.contains("vocab") || !m["vocab"].is_object()) throw FormatError(what + ": model has no \"vocab\" object");
  if (m.contains("dropout") && !m["dropout"].is_null()) throw FormatError(what + ": BPE dropout is not supported");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (m.contains(k) && !m[k].is_null() && m[k] != "") throw FormatError(what + ": BPE " + k + " is not supported");
  const size_t V0 = m["vocab"].size();
  if (V0 > static_cast<size_t>(kMaxVocab)) throw FormatError(what + ": vocab too large");
  std::vector<std::string> vocab(V0);
  std::vector<char> seen(V0, 0);
  auto place = [&](const std::string& piece, int64_t id) {
    if (id < 0 || id >= kMaxVocab) throw FormatError(what + ": token '" + piece + "' has bad id " + std::to_string(id));
    if (static_cast<size_t>(id) >= vocab.size()) {
      vocab.resize(static_cast<size_t>(id) + 1);
      seen.resize(static_cast<size_t>(id) + 1, 0);
    }
    if (seen[static_cast<size_t>(id)] && vocab[static_cast<size_t>(id)] != piece)
      throw FormatError(what + ": id " + std::to_string(id) + " is given to two tokens");
    vocab[static_cast<size_t>(id)] = piece;
    seen[static_cast<size_t>(id)] = 1;
  };
  for (const auto& [piece, id] : m["vocab"].items()) {
    if (!id.is_number_integer()) throw FormatError(what + ": vocab entry '" + piece + "' has a non-integer id");
    place(piece, id.get<int64_t>());
  }
  std::vector<AddedToken> added;
  if (j.contains("added_tokens") && j["added_tokens"].is_array())
    for (const auto& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
          !a["content"].is_string())
        throw FormatError(what + ": an added_tokens entry lacks an integer id or a string content");
      AddedToken t;
      t.content = a["content"].get<std::string>();
      t.id = a["id"].get<int>();
      t.special = jbool(a, "special", false);
      t.lstrip = jbool(a, "lstrip", false);
      t.rstrip = jbool(a, "rstrip", false);
      if (jbool(a, "single_word", false))
        throw FormatError(what + ": added token '" + t.content + "' uses single_word, not supported");
      place(t.content, t.id);
      added.push_back(t);
    }
  for (size_t k = 0; k < vocab.size(); ++k)
    if (!seen[k]) throw FormatError(what + ": no token has id " + std::to_string(k));
  std::vector<std::pair<std::string, std::string>> merges;
  if (m.contains("merges")) {
    if (!m["merges"].is_array()) throw FormatError(what + ": merges is not an array");
    merges.reserve(m["merges"].size());
    for (const auto& e : m["merges"]) {
      if (e.is_string()) {
        const std::string s = e.get<std::string>();
        const size_t sp = s.find(' ', 1);
        if (sp == std::string::npos) throw FormatError(what + ": merge '" + s + "' is not two pieces");
        merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
      } else {
        throw FormatError(what + ": a merge is neither \"a b\" nor [a, b]");
      }
    }
  }
  Options o;
  o.ignore_merges = jbool(m, "ignore_merges", false);
  o.byte_fallback = jbool(m, "byte_fallback", false);
  o.fuse_unk = jbool(m, "fuse_unk", false);
  if (m.contains("unk_token") && m["unk_token"].is_string()) {
    auto it = m["vocab"].find(m["unk_token"].get<std::string>());
    if (it != m["vocab"].end()) o.unk_id = it->get<int>();
  }
  // Normalizer and pre-tokenizer: the combinations real byte-level and SentencePiece-style
  // tokenizers use; anything else is refused.
  bool byte_level = false, sp = false;
  const nlohmann::json norm = j.value("normalizer", nlohmann::json());
  std::vector<nlohmann::json> norms;
  if (norm.is_object() && norm.value("type", "") == "Sequence" && norm.contains("normalizers"))
    for (const auto& x : norm["normalizers"]) norms.push_back(x);
  else if (!norm.is_null()) norms.push_back(norm);
  for (const auto& x : norms) {
    const std::string t = x.is_object() ? x.value("type", "") : "";
    if (t == "Prepend" && x.value("prepend", "") == kMeta) {
      o.prepend_normalizer = true;
      sp = true;
    } else if (t == "Replace" && x.contains("pattern") && x["pattern"].value("String", "") == " " &&
               x.value("content", "") == kMeta) {
      sp = true;
    } else {
      throw FormatError(what + ": normalizer " + x.dump() + " is not supported");
    }
  }
  const nlohmann::json pre = j.value("pre_tokenizer", nlohmann::json());
  std::vector<nlohmann::json> pres;
  if (pre.is_object() && pre.value("type", "") == "Sequence" && pre.contains("pretokenizers"))
    for (const auto& x : pre["pretokenizers"]) pres.push_back(x);
  else if (!pre.is_null()) pres.push_back(pre);
  for (size_t k = 0; k < pres.size(); ++k) {
    const auto& x = pres[k];
    const std::string t = x.is_object() ? x.value("type", "") : "";
    if (t == "Digits" && k + 1 < pres.size() && jbool(x, "individual_digits", false)) {
      o.individual_digits = true;
    } else if (t == "ByteLevel" && k + 1 == pres.size()) {
      byte_level = true;
      o.add_prefix_space = jbool(x, "add_prefix_space", false);
      o.split_regex = jbool(x, "use_regex", true);
    } else if (t == "Metaspace" && pres.size() == 1 && x.value("replacement", "") == kMeta) {
      sp = true;
      o.metaspace = true;
      o.metaspace_split = jbool(x, "split", true);
      o.prepend_scheme = x.value("prepend_scheme", jbool(x, "add_prefix_space", true) ? "always" : "never");
    } else {
      throw FormatError(what + ": pre_tokenizer " + x.dump().substr(0, 200) + " is not supported");
    }
  }
  if (byte_level == sp)
    throw FormatError(what +
                      ": neither a byte-level nor a SentencePiece-style BPE (normalizer/pre_tokenizer not recognised)");
  o.kind = byte_level ? Kind::ByteLevel : Kind::SentencePiece;
  // BOS from a TemplateProcessing post-processor that puts a special token first.
  const nlohmann::json post = j.value("post_processor", nlohmann::json());
  if (post.is_object() && post.value("type", "") == "TemplateProcessing" && post.contains("single") &&
      post["single"].is_array() && !post["single"].empty() && post["single"][0].contains("SpecialToken")) {
    const std::string name = post["single"][0]["SpecialToken"].value("id", "");
    for (const AddedToken& t : added)
      if (t.content == name) {
        o.bos = t.id;
        o.add_bos = true;
      }
  }
  auto find_added = [&](std::initializer_list<const char*> names) {
    for (const char* nm : names)
      for (const AddedToken& t : added)
        if (t.content == nm) return t.id;
    return -1;
  };
  if (o.bos < 0) o.bos = find_added({"<s>", "<|begin_of_text|>", "<|im_start|>", "<bos>"});
  o.eos = find_added({"</s>", "<|end_of_text|>", "<|im_end|>", "<|endoftext|>", "<eos>"});
  return HfBpeTokenizer(std::move(vocab), merges, std::move(added), std::move(o), what);
}

HfBpeTokenizer HfBpeTokenizer::read(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path file = path;
  if (fs::is_directory(file, ec)) file /= "tokenizer.json";
  const std::vector<uint8_t> bytes = read_file_bytes(file.string());
  HfBpeTokenizer tok =
      from_json(parse_json_text(std::string(bytes.begin(), bytes.end()), file.string()), file.string());
  const fs::path cfg_path = file.parent_path() / "tokenizer_config.json";
  if (fs::is_regular_file(cfg_path, ec)) {
    const std::vector<uint8_t> cb = read_file_bytes(cfg_path.string());
    const nlohmann::json cfg = parse_json_text(std::string(cb.begin(), cb.end()), cfg_path.string());
    if (!cfg.is_object()) throw FormatError(cfg_path.string() + ": not a JSON object");
    auto id_of = [&](const char* key, int fallback) {
      if (!cfg.contains(key) || cfg[key].is_null()) return fallback;
      const int id = tok.token_id_raw(json_token_text(cfg[key]));
      if (id < 0) throw FormatError(cfg_path.string() + ": " + key + " " + cfg[key].dump() + " is not in the vocab");
      return id;
    };
    tok.opt_.bos = id_of("bos_token", tok.opt_.bos);
    tok.opt_.eos = id_of("eos_token", tok.opt_.eos);
    tok.opt_.add_bos = jbool(cfg, "add_bos_token", tok.opt_.add_bos);
    if (cfg.contains("chat_template") && cfg["chat_template"].is_string())
      tok.opt_.chat_template = cfg["chat_template"].get<std::string>();
  }
  return tok;
}

HfBpeTokenizer HfBpeTokenizer::from_gguf(const GgufFile& g) {
  const std::string model = g.get_string("tokenizer.ggml.model");
  if (model != "gpt2")
    throw FormatError(g.what + ": tokenizer.ggml.model '" + model + "' is not a byte-level BPE (gpt2)");
  Options o;
  o.kind = Kind::ByteLevel;
  const std::string pre = g.find("tokenizer.ggml.pre") ? g.get_string("tokenizer.ggml.pre") : "default";
  if (pre == "smollm") o.individual_digits = true;
  else if (pre != "gpt-2" && pre != "default")
    throw FormatError(g.what + ": tokenizer.ggml.pre '" + pre + "' is not supported (smollm, gpt-2, default)");
  const GgufValue& toks = g.get_array("tokenizer.ggml.tokens");
  if (toks.elem != GgufType::STRING || toks.items.empty() || toks.items.size() > static_cast<size_t>(kMaxVocab))
    throw FormatError(g.what + ": tokenizer.ggml.tokens is not a non-empty string array");
  std::vector<std::string> vocab;
  vocab.reserve(toks.items.size());
  for (const GgufValue& v : toks.items) vocab.push_back(v.s);
  std::vector<std::pair<std::string, std::string>> merges;
  if (g.find("tokenizer.ggml.merges")) {
    const GgufValue& ms = g.get_array("tokenizer.ggml.merges");
    if (ms.elem != GgufType::STRING) throw FormatError(g.what + ": tokenizer.ggml.merges is not a string array");
    for (const GgufValue& v : ms.items) {
      const size_t sp = v.s.find(' ', 1);
      if (sp == std::string::npos) throw FormatError(g.what + ": merge '" + v.s + "' is not two pieces");
      merges.emplace_back(v.s.substr(0, sp), v.s.substr(sp + 1));
    }
  }
  std::vector<AddedToken> added;
  if (g.find("tokenizer.ggml.token_type")) {
    const GgufValue& tt = g.get_array("tokenizer.ggml.token_type");
    if (tt.items.size() != vocab.size())
      throw FormatError(g.what + ": tokenizer.ggml.token_type has " + std::to_string(tt.items.size()) +
                        " entries for " + std::to_string(vocab.size()) + " tokens");
    for (size_t k = 0; k < vocab.size(); ++k)
      if (tt.items[k].i == 3 || tt.items[k].i == 4)  // control, user-defined
        added.push_back({vocab[k], static_cast<int>(k), tt.items[k].i == 3, false, false});
  }
  auto opt_id = [&](const char* key) {
    if (!g.find(key)) return -1;
    const int64_t v = g.get_int(key);
    if (v < 0 || v >= static_cast<int64_t>(vocab.size()))
      throw FormatError(g.what + ": " + key + " = " + std::to_string(v) + " is outside the vocab");
    return static_cast<int>(v);
  };
  o.bos = opt_id("tokenizer.ggml.bos_token_id");
  o.eos = opt_id("tokenizer.ggml.eos_token_id");
  o.unk_id = opt_id("tokenizer.ggml.unknown_token_id");
  o.add_bos = g.find("tokenizer.ggml.add_bos_token") ? g.get_int("tokenizer.ggml.add_bos_token") != 0 : false;
  if (g.find("tokenizer.ggml.add_space_prefix") && g.get_int("tokenizer.ggml.add_space_prefix") != 0)
    o.add_prefix_space = true;
  if (g.find("tokenizer.chat_template")) o.chat_template = g.get_string("tokenizer.chat_template");
  return HfBpeTokenizer(std::move(vocab), merges, std::move(added), std::move(o), g.what);
}

std::unique_ptr<Tokenizer> tokenizer_from_model(const std::string& model_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p(model_path);
  if (p.extension() == ".gguf")
    return std::make_unique<HfBpeTokenizer>(HfBpeTokenizer::from_gguf(read_gguf(model_path)));
  const fs::path dir = fs::is_directory(p, ec) ? p : p.parent_path();
  if ((fs::is_directory(p, ec) || p.extension() == ".safetensors") && fs::is_regular_file(dir / "tokenizer.json", ec))
    return std::make_unique<HfBpeTokenizer>(HfBpeTokenizer::read((dir / "tokenizer.json").string()));
  return nullptr;
}

}  // namespace cg::models
