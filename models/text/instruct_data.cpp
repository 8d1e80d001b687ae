// models/text/instruct_data.cpp — instruction records: parsing, rendering to scored token
// sequences, and padded or packed rows for training.
#include "models/text/instruct_data.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "engine/backend.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "models/io/file_io.h"

namespace cg::models {
namespace {

std::string string_field(const nlohmann::json& o, const char* key, bool required, const std::string& at) {
  const auto it = o.find(key);
  if (it == o.end() || it->is_null()) {
    if (required) throw FormatError(at + " has no \"" + key + "\"");
    return "";
  }
  if (!it->is_string()) throw FormatError(at + ": \"" + key + "\" is not a string");
  return it->get<std::string>();
}

InstructRecord parse_record(const nlohmann::json& o, const std::string& at) {
  if (!o.is_object()) throw FormatError(at + " is not an object");
  InstructRecord r;
  size_t chars = 0;
  if (o.contains("messages")) {
    const auto& m = o["messages"];
    if (!m.is_array() || m.empty()) throw FormatError(at + ": \"messages\" is not a non-empty list");
    bool assistant = false;
    for (size_t i = 0; i < m.size(); ++i) {
      const std::string mat = at + " message " + std::to_string(i);
      if (!m[i].is_object()) throw FormatError(mat + " is not an object");
      ChatMessage msg{string_field(m[i], "role", true, mat), string_field(m[i], "content", true, mat)};
      if (msg.role != "system" && msg.role != "user" && msg.role != "assistant")
        throw FormatError(mat + ": role \"" + msg.role.substr(0, 40) + "\" is not system, user or assistant");
      assistant |= msg.role == "assistant";
      chars += msg.content.size();
      r.messages.push_back(std::move(msg));
    }
    if (!assistant) throw FormatError(at + " has no assistant message (nothing to learn)");
  } else {
    if (!o.contains("instruction"))
      throw FormatError(at + " has neither \"instruction\" (Alpaca form) nor \"messages\" (chat form)");
    r.instruction = string_field(o, "instruction", true, at);
    r.input = string_field(o, "input", false, at);
    r.output = string_field(o, "output", true, at);
    chars = r.instruction.size() + r.input.size() + r.output.size();
  }
  if (chars > kMaxRecordChars)
    throw FormatError(at + " holds " + std::to_string(chars) + " bytes of text, more than the limit of " +
                      std::to_string(kMaxRecordChars));
  return r;
}

// The ids of the template's end-of-turn tokens that the tokenizer knows.
std::vector<int> stop_ids(const Tokenizer& tok, ChatFormat f) {
  std::vector<int> ids{tok.eos_id()};
  for (const std::string& s : chat_stop_tokens(f))
    if (const int id = tok.token_id(s); id >= 0) ids.push_back(id);
  return ids;
}

}  // namespace

std::string alpaca_prompt(const std::string& instruction, const std::string& input) {
  if (input.empty())
    return "Below is an instruction that describes a task. Write a response that appropriately completes the "
           "request.\n\n### Instruction:\n" +
           instruction + "\n\n### Response:\n";
  return "Below is an instruction that describes a task, paired with an input that provides further context. "
         "Write a response that appropriately completes the request.\n\n### Instruction:\n" +
         instruction + "\n\n### Input:\n" + input + "\n\n### Response:\n";
}

std::vector<InstructRecord> parse_instruct_records(const std::string& text, const std::string& what) {
  std::vector<InstructRecord> out;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) throw FormatError(what + ": no records (the file is empty)");
  if (text[first] == '[') {  // a JSON list
    const nlohmann::json j = parse_json_limited(text, what);
    if (!j.is_array()) throw FormatError(what + ": expected a JSON list of records");
    if (j.size() > kMaxRecords)
      throw FormatError(what + ": " + std::to_string(j.size()) + " records is more than the limit of " +
                        std::to_string(kMaxRecords));
    for (size_t i = 0; i < j.size(); ++i) out.push_back(parse_record(j[i], what + ": record " + std::to_string(i)));
  } else {  // JSONL
    size_t start = 0, line = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      ++line;
      const std::string l = text.substr(start, end - start);
      start = end + 1;
      if (l.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string at = what + ": line " + std::to_string(line);
      if (out.size() >= kMaxRecords)
        throw FormatError(what + ": more than the limit of " + std::to_string(kMaxRecords) + " records");
      out.push_back(parse_record(parse_json_limited(l, at), at));
    }
  }
  if (out.empty()) throw FormatError(what + ": no records");
  return out;
}

std::vector<InstructRecord> read_instruct_records(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path, kMaxRecordsBytes);
  return parse_instruct_records(std::string(bytes.begin(), bytes.end()), path);
}

Sample render_sample(const InstructRecord& r, const Tokenizer& tok, const RenderOptions& o) {
  if (o.cutoff < 2) throw FormatError("cutoff must be at least 2 tokens, got " + std::to_string(o.cutoff));
  const size_t cutoff = static_cast<size_t>(o.cutoff);
  Sample s;
  std::vector<int> ids;
  std::vector<uint8_t> scored;
  if (r.messages.empty()) {
    const std::string prompt = alpaca_prompt(r.instruction, r.input);
    ids = tok.encode(prompt + r.output, tok.add_bos(), false);
    if (ids.size() > cutoff) ids.resize(cutoff);
    if (ids.size() < cutoff && (ids.empty() || ids.back() != tok.eos_id())) ids.push_back(tok.eos_id());
    const size_t n_prompt = o.mask_prompt ? tok.encode(prompt, tok.add_bos(), false).size() : 1;
    scored.assign(ids.size(), 0);
    for (size_t i = std::max<size_t>(n_prompt, 1); i < ids.size(); ++i) scored[i] = 1;
  } else {
    if (!o.have_chat)
      throw FormatError("chat records need a chat template: the tokenizer carries none (give --chat-template NAME)");
    ids = tok.encode(render_chat(o.chat, o.chat_template, r.messages, false), false, false);
    scored.assign(ids.size(), o.mask_prompt ? 0 : 1);
    scored[0] = 0;
    if (o.mask_prompt) {  // each assistant turn: after the header that opens it, through its end-of-turn
      const std::vector<int> stops = stop_ids(tok, o.chat);
      for (size_t k = 0; k < r.messages.size(); ++k) {
        if (r.messages[k].role != "assistant") continue;
        const std::vector<ChatMessage> before(r.messages.begin(), r.messages.begin() + static_cast<std::ptrdiff_t>(k));
        const std::vector<ChatMessage> through(r.messages.begin(),
                                               r.messages.begin() + static_cast<std::ptrdiff_t>(k + 1));
        const size_t a = tok.encode(render_chat(o.chat, o.chat_template, before, true), false, false).size();
        size_t b =
            std::min(ids.size(), tok.encode(render_chat(o.chat, o.chat_template, through, false), false, false).size());
        for (size_t i = a; i < b; ++i)
          if (std::find(stops.begin(), stops.end(), ids[i]) != stops.end()) {
            b = i + 1;  // the end-of-turn token is learned, what follows it is not
            break;
          }
        for (size_t i = std::max<size_t>(a, 1); i < b; ++i) scored[i] = 1;
      }
    }
    if (ids.size() > cutoff) {
      ids.resize(cutoff);
      scored.resize(cutoff);
    }
  }
  s.ids.assign(ids.begin(), ids.end());
  s.scored = std::move(scored);
  return s;
}

std::vector<InstructDataset::Row> InstructDataset::make_rows(const std::vector<Sample>& samples, int64_t row_len,
                                                             bool pack, int64_t* kept) {
  std::vector<Row> rows;
  *kept = 0;
  for (const Sample& s : samples) {
    const int64_t n = static_cast<int64_t>(s.ids.size()) - 1;                                     // positions it takes
    if (n < 1 || std::find(s.scored.begin() + 1, s.scored.end(), 1) == s.scored.end()) continue;  // nothing scored
    if (n > row_len)
      throw FormatError("a sample of " + std::to_string(n + 1) + " tokens does not fit rows of " +
                        std::to_string(row_len) + " positions");
    if (rows.empty() || !pack || static_cast<int64_t>(rows.back().ids.size()) + n > row_len) rows.emplace_back();
    Row& r = rows.back();
    const int32_t seg = r.segments.empty() ? 0 : r.segments.back() + 1;
    for (int64_t t = 0; t < n; ++t) {
      r.ids.push_back(s.ids[static_cast<size_t>(t)]);
      r.targets.push_back(s.scored[static_cast<size_t>(t + 1)] ? s.ids[static_cast<size_t>(t + 1)] : -1);
      r.segments.push_back(seg);
    }
    ++*kept;
  }
  return rows;
}

InstructDataset::InstructDataset(const std::vector<Sample>& train, const std::vector<Sample>& val, int64_t row_len,
                                 bool pack)
    : row_len_(row_len), pack_(pack) {
  if (row_len < 1) throw FormatError("dataset: row length must be positive");
  int64_t val_kept = 0;
  train_rows_ = make_rows(train, row_len, pack, &train_samples_);
  train_dropped_ = static_cast<int64_t>(train.size()) - train_samples_;
  val_rows_ = make_rows(val, row_len, pack, &val_kept);
  if (train_rows_.empty())
    throw FormatError(
        "dataset: no training sample has a token to learn (with --mask-prompt, a sample cut at the "
        "cutoff inside its prompt has none: raise --cutoff)");
}

int64_t InstructDataset::row_of(uint64_t seed, int64_t sample) const {
  const int64_t R = train_rows(), epoch = sample / R;
  if (epoch != perm_epoch_ || seed != perm_seed_ || perm_.empty()) {  // Fisher–Yates, seeded per epoch
    perm_.resize(static_cast<size_t>(R));
    for (int64_t i = 0; i < R; ++i) perm_[static_cast<size_t>(i)] = i;
    Rng rng(dropout_hash(seed, static_cast<uint64_t>(epoch)));
    for (int64_t i = R - 1; i > 0; --i)
      std::swap(perm_[static_cast<size_t>(i)], perm_[static_cast<size_t>(rng.below(static_cast<uint64_t>(i + 1)))]);
    perm_epoch_ = epoch, perm_seed_ = seed;
  }
  return perm_[static_cast<size_t>(sample % R)];
}

// Rows padded to the longest: id 0 and target −1 after a row's end, the padding one more
// segment (it sees only itself and is never scored).
Batch InstructDataset::make(const std::vector<const Row*>& rows, Device device) const {
  const int64_t B = static_cast<int64_t>(rows.size());
  int64_t T = 1;
  for (const Row* r : rows) T = std::max<int64_t>(T, static_cast<int64_t>(r->ids.size()));
  Tensor ids = Tensor::zeros({B, T}, DType::I32, Device::CPU);
  Tensor tg = Tensor::empty({B, T}, DType::I32, Device::CPU);
  Tensor sg = Tensor::empty({B, T}, DType::I32, Device::CPU);
  int32_t *iv = ids.data<int32_t>(), *tv = tg.data<int32_t>(), *sv = sg.data<int32_t>();
  for (int64_t b = 0; b < B; ++b) {
    const Row& r = *rows[static_cast<size_t>(b)];
    const int64_t n = static_cast<int64_t>(r.ids.size());
    for (int64_t t = 0; t < T; ++t) {
      const size_t i = static_cast<size_t>(b * T + t);
      if (t < n) {
        iv[i] = r.ids[static_cast<size_t>(t)];
        tv[i] = r.targets[static_cast<size_t>(t)];
        sv[i] = r.segments[static_cast<size_t>(t)];
      } else {
        tv[i] = -1;
        sv[i] = r.segments.empty() ? 0 : r.segments.back() + 1;
      }
    }
  }
  Batch out{ids.to(device), tg.to(device), Tensor()};
  bool several = false;  // a row with a sample boundary: only then is the block mask needed
  for (const Row* r : rows) several |= !r->segments.empty() && r->segments.back() > 0;
  if (pack_ && several) out.segments = sg.to(device);
  return out;
}

Batch InstructDataset::train_batch(uint64_t seed, int64_t first_sample, int64_t batch, Device device) const {
  std::vector<const Row*> rows;
  for (int64_t i = 0; i < batch; ++i) rows.push_back(&train_rows_[static_cast<size_t>(row_of(seed, first_sample + i))]);
  return make(rows, device);
}

Batch InstructDataset::val_batch(int64_t first_window, int64_t batch, Device device) const {
  const int64_t n = std::min(batch, val_windows() - first_window);
  if (n <= 0) throw FormatError("dataset: no validation rows");
  std::vector<const Row*> rows;
  for (int64_t i = 0; i < n; ++i) rows.push_back(&val_rows_[static_cast<size_t>(first_window + i)]);
  return make(rows, device);
}

std::string InstructDataset::describe() const {
  return std::to_string(train_samples_) + " training samples" +
         (train_dropped_ ? " (" + std::to_string(train_dropped_) + " more had no token to learn within the cutoff)"
                         : "") +
         " in " + std::to_string(train_rows()) + " rows" + (pack_ ? " (packed)" : " (padded)") + ", " +
         std::to_string(val_windows()) + " validation rows, rows of up to " + std::to_string(row_len_) + " positions";
}

}  // namespace cg::models
