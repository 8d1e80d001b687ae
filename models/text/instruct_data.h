// models/text/instruct_data.h — instruction-tuning data: records in the Alpaca /
// LLM-Adapters form ({instruction, input, output}) or chat form ({messages: [{role,
// content}]}), from a JSON list or JSONL; each rendered to one token sequence with a
// per-token "scored" flag (the prompt masked or not), truncated to a cutoff with EOS
// appended as LLM-Adapters' finetune.py does; and InstructDataset, which serves them to the
// Trainer one per row padded to the longest row of the batch, or packed several per row.
//
// Packed batches carry segment ids (Batch::segments) when some row holds more than one
// sample; otherwise they take the plain causal path, exactly as padded ones.
//
// Row order: the rows are shuffled once per epoch by a seeded permutation, and global
// sample i is row perm_e[i mod R] of epoch e = i / R, so the data position is the number
// of rows consumed, as for TokenDataset. Packing is fixed (greedy, file order) and does
// not depend on the seed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/text/chat_template.h"
#include "models/text/data.h"
#include "models/text/tokenizer.h"

namespace cg::models {

// The LLM-Adapters (Alpaca) prompt, ending with "### Response:\n". Without input:
// "Below is an instruction that describes a task. Write a response that appropriately
// completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"; with
// input, Alpaca's variant ("..., paired with an input that provides further context. ...")
// with an "### Input:\n{input}\n\n" section before the response. Training appends the
// output; evaluate's likelihood mode appends "the correct answer is ".
std::string alpaca_prompt(const std::string& instruction, const std::string& input);

struct InstructRecord {
  // Alpaca form (messages empty): the prompt is alpaca_prompt(instruction, input), the
  // response the output. Any other field (LLM-Adapters' "answer") is ignored.
  std::string instruction, input, output;
  std::vector<ChatMessage> messages;  // chat form: system/user/assistant turns, ≥ 1 assistant
};

// Limits on a records file: its size, the records in it, the text of one record.
constexpr uint64_t kMaxRecordsBytes = 512u << 20;
constexpr size_t kMaxRecords = 1000000;
constexpr size_t kMaxRecordChars = 1u << 20;

// A JSON list of records, or JSONL (one record per non-empty line). Bad JSON (depth and
// size limited: file_io.h's parse_json_limited), a record that is neither form, a field
// that is not a string, an unknown role, a record over kMaxRecordChars or no record at all
// → FormatError naming `what` and the record.
std::vector<InstructRecord> parse_instruct_records(const std::string& text, const std::string& what);
std::vector<InstructRecord> read_instruct_records(const std::string& path);

struct RenderOptions {
  int64_t cutoff = 256;      // tokens per sample at most (LLM-Adapters' cutoff_len), ≥ 2
  bool mask_prompt = false;  // score the response tokens only (their train_on_inputs=False)
  // Chat records: the model's template family and text (chat_template.h).
  bool have_chat = false;
  ChatFormat chat = ChatFormat::ChatML;
  std::string chat_template;
};

// One sample: ids[0..n) and scored[i] (ids[i] is a target, predicted from ids[<i]; never
// ids[0]). Alpaca: encode(prompt + output) with BOS when the tokenizer adds one, cut to
// cutoff tokens, then EOS appended when it still fits and is not already last (as
// finetune.py's tokenize). The prompt is the first |encode(prompt)| tokens. Chat: the
// template's rendering (it writes any BOS and the end-of-turn tokens itself); the scored
// part of an assistant turn runs from after its opening header through its end-of-turn
// token. Without mask_prompt every token but the first is scored.
struct Sample {
  std::vector<int32_t> ids;
  std::vector<uint8_t> scored;
};
Sample render_sample(const InstructRecord& record, const Tokenizer& tok, const RenderOptions& options);

class InstructDataset : public Dataset {
 public:
  // row_len: positions per row (a sample of n tokens takes n − 1: inputs ids[0..n−1),
  // targets ids[1..n)); every sample must fit. pack: greedy, in order, as many samples as
  // fit per row; else one per row. Samples with no scored target are dropped.
  InstructDataset(const std::vector<Sample>& train, const std::vector<Sample>& val, int64_t row_len, bool pack);
  int64_t seq_len() const override { return row_len_; }
  Batch train_batch(uint64_t seed, int64_t first_sample, int64_t batch, Device device = Device::CPU) const override;
  int64_t val_windows() const override { return static_cast<int64_t>(val_rows_.size()); }
  Batch val_batch(int64_t first_window, int64_t batch, Device device = Device::CPU) const override;
  // "N training samples in R rows (packed), V validation rows, rows of up to L positions"
  std::string describe() const override;
  int64_t train_rows() const { return static_cast<int64_t>(train_rows_.size()); }
  int64_t train_samples() const { return train_samples_; }
  // Row r of epoch e under `seed` (a permutation of the rows per epoch).
  int64_t row_of(uint64_t seed, int64_t sample) const;

 private:
  struct Row {  // the packed samples' inputs, targets (−1 unscored) and sample ids
    std::vector<int32_t> ids, targets, segments;
  };
  static std::vector<Row> make_rows(const std::vector<Sample>& samples, int64_t row_len, bool pack, int64_t* kept);
  Batch make(const std::vector<const Row*>& rows, Device device) const;
  std::vector<Row> train_rows_, val_rows_;
  int64_t row_len_;
  bool pack_;
  int64_t train_samples_ = 0, train_dropped_ = 0;
  mutable std::vector<int64_t> perm_;  // the permutation of the epoch last asked for
  mutable int64_t perm_epoch_ = -1;
  mutable uint64_t perm_seed_ = 0;
};

}  // namespace cg::models
