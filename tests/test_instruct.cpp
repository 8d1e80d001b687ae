// tests/test_instruct.cpp — instruction records: parsing (and refusing) JSON / JSONL, the
// LLM-Adapters prompt shared with evaluate, rendering with EOS, cutoff and the prompt mask,
// padded and packed rows; and the two exactness claims: a packed row's per-sample losses and
// gradients equal the samples run one by one, and padding / masked prompt tokens contribute
// nothing to the loss or the gradient.
#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include "engine/rng.h"
#include "engine/tape.h"
#include "models/llama/llama.h"
#include "models/text/instruct_data.h"
#include "models/text/tokenizer_json.h"
#include "models/train/evaluation.h"
#include "models/train/trainer.h"
#include "ops/ops.h"
#include "tests/skip.h"
#include "tests/tolerances.h"

using namespace cg;
using namespace cg::models;

namespace {

LlamaConfig tiny_config(int64_t seq) {
  LlamaConfig c;
  c.dim = 16;
  c.hidden_dim = 24;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 37;
  c.seq_len = seq;
  c.tied_embeddings = false;
  return c;
}

// Random samples of the given lengths, ids < vocab, the first `prompt` tokens unscored.
std::vector<Sample> random_samples(const std::vector<int>& lengths, int prompt, uint64_t seed) {
  Rng g(seed);
  std::vector<Sample> out;
  for (int n : lengths) {
    Sample s;
    for (int i = 0; i < n; ++i) {
      s.ids.push_back(static_cast<int32_t>(g.below(37)));
      s.scored.push_back(i >= std::max(prompt, 1) ? 1 : 0);
    }
    out.push_back(s);
  }
  return out;
}

// Σ over scored positions of −log p (the mean loss × the scored count).
Tensor summed_loss(LlamaModel& m, const Batch& b, const Tensor& targets) {
  int64_t kept = 0;
  for (int32_t t : targets.to_i32_vector()) kept += t >= 0;
  return ops::mul_scalar(m.loss(b.ids, targets, b.segments), static_cast<double>(kept));
}

// Targets of row `row` kept only for sample `seg` of that row (−1 elsewhere).
Tensor targets_of(const Batch& b, int64_t row, int32_t seg) {
  std::vector<int32_t> t = b.targets.to_i32_vector();
  const std::vector<int32_t> s = b.segments.to_i32_vector();
  const int64_t T = b.ids.dim(1);
  for (size_t i = 0; i < t.size(); ++i)
    if (static_cast<int64_t>(i) / T != row || s[i] != seg) t[i] = -1;
  return Tensor::from_i32(t, b.targets.shape());
}

std::vector<double> grads_of(LlamaModel& m, const Tensor& loss) {
  m.params().zero_grad();
  backward(loss);
  return m.params().flat_grad().to_f64_vector();
}

}  // namespace

TEST_CASE("instruct: the LLM-Adapters prompt is the one evaluate --task uses") {
  CHECK(alpaca_prompt("Say hi.", "") ==
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\nSay hi.\n\n### Response:\n");
  CHECK(alpaca_prompt("Add.", "2 3") ==
        "Below is an instruction that describes a task, paired with an input that provides further context. Write a "
        "response that appropriately completes the request.\n\n### Instruction:\nAdd.\n\n### Input:\n2 3\n\n"
        "### Response:\n");
  TaskItem item{"Is it? Answer format: true/false", "", "true", {"true", "false"}};
  CHECK(task_prompt(item) == alpaca_prompt(item.instruction, item.input) + "the correct answer is ");
}

TEST_CASE("instruct: JSON lists and JSONL of both forms parse; hostile input is one FormatError") {
  const auto a = parse_instruct_records(
      R"([{"instruction": "i", "input": "", "output": "o", "answer": "x"}, {"instruction": "j", "output": "p", "input": null}])",
      "t");
  REQUIRE(a.size() == 2);
  CHECK(a[0].instruction == "i");
  CHECK(a[0].output == "o");
  CHECK(a[1].input.empty());
  const auto b = parse_instruct_records(
      "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}]}\n\n"
      "{\"instruction\": \"k\", \"output\": \"q\"}\n",
      "t");
  REQUIRE(b.size() == 2);
  REQUIRE(b[0].messages.size() == 2);
  CHECK(b[0].messages[1].content == "yo");
  CHECK(b[1].instruction == "k");
  for (const std::string& bad : std::vector<std::string>{
           "", "  \n", "[]", "[{\"instruction\": \"i\"}]", "[{\"instruction\": 3, \"output\": \"o\"}]",
           "[{\"output\": \"o\"}]", "[1]", "{\"instruction\": \"i\", \"output\": \"o\"", "[{\"messages\": []}]",
           "[{\"messages\": [{\"role\": \"user\", \"content\": \"u\"}]}]",
           "[{\"messages\": [{\"role\": \"robot\", \"content\": \"u\"}]}]",
           "[{\"messages\": [{\"role\": \"assistant\"}]}]", std::string(100, '[') + std::string(100, ']'),
           "[{\"instruction\": \"" + std::string(kMaxRecordChars + 1, 'x') + "\", \"output\": \"\"}]"}) {
    INFO(bad.substr(0, 60));
    CHECK_THROWS_AS(parse_instruct_records(bad, "t"), FormatError);
  }
}

TEST_CASE("instruct: rendering appends EOS, cuts at the cutoff and masks exactly the prompt") {
  ByteTokenizer tok;
  InstructRecord r{"Say hi.", "", "hi", {}};
  RenderOptions o;
  const std::string prompt = alpaca_prompt(r.instruction, r.input);
  Sample s = render_sample(r, tok, o);
  REQUIRE(s.ids.size() == prompt.size() + 2 + 2);  // BOS, prompt, "hi", EOS
  CHECK(s.ids.front() == ByteTokenizer::kBos);
  CHECK(s.ids.back() == ByteTokenizer::kEos);
  CHECK(s.scored[0] == 0);
  for (size_t i = 1; i < s.ids.size(); ++i) CHECK(s.scored[i] == 1);  // the papers' default: loss on everything
  o.mask_prompt = true;
  s = render_sample(r, tok, o);
  for (size_t i = 0; i < s.ids.size(); ++i) CHECK(s.scored[i] == (i >= prompt.size() + 1 ? 1 : 0));  // "hi" + EOS
  o.cutoff = 20;  // as finetune.py: truncated, and no EOS when it does not fit
  s = render_sample(r, tok, o);
  CHECK(s.ids.size() == 20);
  CHECK(s.ids.back() != ByteTokenizer::kEos);
  CHECK(std::count(s.scored.begin(), s.scored.end(), 1) == 0);  // only prompt left: nothing to learn

  // Chat (ChatML): the scored tokens are the assistant's content and its end-of-turn.
  InstructRecord c{"", "", "", {{"user", "hi"}, {"assistant", "yo"}}};
  RenderOptions oc;
  oc.have_chat = true;
  oc.mask_prompt = true;
  s = render_sample(c, tok, oc);
  const std::string text = render_chat(ChatFormat::ChatML, "", c.messages, false);
  REQUIRE(s.ids.size() == text.size());  // bytes; the template writes no BOS
  std::string learned;
  for (size_t i = 0; i < s.ids.size(); ++i)
    if (s.scored[i]) learned += static_cast<char>(s.ids[i]);
  CHECK(learned == "yo<|im_end|>\n");  // bytes know no end-of-turn token: through the turn's end
  oc.have_chat = false;
  CHECK_THROWS_AS(render_sample(c, tok, oc), FormatError);
}

TEST_CASE("instruct: chat records with SmolLM2's tokenizer learn the reply and <|im_end|> only") {
  const std::string path = "../shared/data/smollm2/tokenizer.json";
  if (!cg::testing::have_file(path)) return;
  auto tok = load_tokenizer(path, 0);
  InstructRecord c{"", "", "", {{"user", "What is 2+2?"}, {"assistant", "4"}, {"user", "And 3+3?"}, {"assistant", "6"}}};
  RenderOptions o;
  o.have_chat = true;
  o.mask_prompt = true;
  const Sample s = render_sample(c, *tok, o);
  std::vector<int> learned;
  for (size_t i = 0; i < s.ids.size(); ++i)
    if (s.scored[i]) learned.push_back(s.ids[i]);
  const int end = tok->token_id("<|im_end|>");
  REQUIRE(end >= 0);
  std::vector<int> want = tok->encode("4", false, false);
  want.push_back(end);
  const std::vector<int> six = tok->encode("6", false, false);
  want.insert(want.end(), six.begin(), six.end());
  want.push_back(end);
  CHECK(learned == want);
}

TEST_CASE("instruct: rows are packed greedily; every row comes once per epoch, by seed") {
  const std::vector<Sample> s = random_samples({9, 14, 6, 12, 3}, 2, 1);  // 8+13+5 | 11+2 positions
  const InstructDataset packed(s, {}, 32, true), padded(s, {}, 32, false);
  CHECK(packed.train_rows() == 2);
  CHECK(padded.train_rows() == 5);
  const Batch b = packed.train_batch(0, 0, 2);
  CHECK(b.ids.dim(1) == 26);  // padded to the longest row
  std::vector<int32_t> seg = b.segments.to_i32_vector(), tg = b.targets.to_i32_vector();
  const int64_t first = packed.row_of(0, 0) == 0 ? 0 : 1;  // the row of samples 0, 1, 2
  std::vector<int32_t> row_seg(seg.begin() + first * 26, seg.begin() + first * 26 + 26);
  std::vector<int32_t> want(26, 0);
  for (int t = 8; t < 21; ++t) want[static_cast<size_t>(t)] = 1;
  for (int t = 21; t < 26; ++t) want[static_cast<size_t>(t)] = 2;
  CHECK(row_seg == want);
  CHECK(tg[static_cast<size_t>(first * 26)] == -1);               // sample 0's first target is in its prompt
  CHECK(tg[static_cast<size_t>(first * 26 + 7)] == s[0].ids[8]);  // its last: its last token
  for (uint64_t seed : {3u, 4u})
    for (int64_t epoch = 0; epoch < 3; ++epoch) {
      std::set<int64_t> seen;
      for (int64_t i = 0; i < 5; ++i) seen.insert(padded.row_of(seed, epoch * 5 + i));
      CHECK(seen.size() == 5);
    }
  std::vector<int64_t> order_a, order_b;
  for (int64_t i = 0; i < 10; ++i) order_a.push_back(padded.row_of(3, i)), order_b.push_back(padded.row_of(4, i));
  CHECK(order_a != order_b);
  CHECK(std::vector<int64_t>(order_a.begin(), order_a.begin() + 5) !=
        std::vector<int64_t>(order_a.begin() + 5, order_a.end()));
  // Any start gives the same rows (resume, data-parallel slices).
  const Batch whole = padded.train_batch(3, 4, 1), again = padded.train_batch(3, 4, 1);
  CHECK(whole.ids.to_i32_vector() == again.ids.to_i32_vector());
  CHECK_FALSE(whole.segments.defined());  // one sample per row: the plain causal path
}

TEST_CASE("instruct: a packed row's per-sample losses and gradients equal each sample run alone") {
  for (DType dt : {DType::F64, DType::F32}) {
    INFO(std::string(dtype_name(dt)));
    LlamaModel built(tiny_config(32), 7);
    auto m = LlamaModel::from_checkpoint(built.to_checkpoint(), Device::CPU, dt);
    m->params().set_trainable(true);
    const std::vector<Sample> s = random_samples({9, 14, 6, 12, 3}, 2, 2);
    const InstructDataset packed({s[0]}, s, 32, true), alone({s[0]}, s, 32, false);
    REQUIRE(packed.val_windows() == 2);
    const Batch pb = packed.val_batch(0, 2);
    const std::vector<int64_t> row_of_sample{0, 0, 0, 1, 1};
    const std::vector<int32_t> seg_of_sample{0, 1, 2, 0, 1};
    std::vector<double> g_alone_sum;
    double worst = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      const Tensor tp = targets_of(pb, row_of_sample[i], seg_of_sample[i]);
      const Batch ab = alone.val_batch(static_cast<int64_t>(i), 1);
      double lp, la;
      {
        NoGrad ng;
        lp = m->loss(pb.ids, tp, pb.segments).item();
        la = m->loss(ab.ids, ab.targets).item();
      }
      worst = std::max(worst, std::abs(lp - la));
      const std::vector<double> g = grads_of(*m, summed_loss(*m, ab, ab.targets));
      if (g_alone_sum.empty()) g_alone_sum.assign(g.size(), 0.0);
      for (size_t k = 0; k < g.size(); ++k) g_alone_sum[k] += g[k];
    }
    // float64: exact here (0); float32: one ulp of the loss observed, the table's kLossAbs allowed
    CHECK(worst <= (dt == DType::F64 ? 1e-12 : cg::testing::tol::kLossAbs));
    // The packed batch's summed loss has the summed gradient of the samples alone.
    const std::vector<double> gp = grads_of(*m, summed_loss(*m, pb, pb.targets));
    double diff = 0, scale = 0;
    for (size_t k = 0; k < gp.size(); ++k) {
      diff = std::max(diff, std::abs(gp[k] - g_alone_sum[k]));
      scale = std::max(scale, std::abs(g_alone_sum[k]));
    }
    CHECK(diff / scale <= (dt == DType::F64 ? 1e-12 : cg::testing::tol::kGradRel));
  }
}

TEST_CASE("instruct: padding and masked prompt tokens contribute nothing to the loss or the gradient") {
  LlamaModel m(tiny_config(32), 11);
  m.params().set_trainable(true);
  const std::vector<Sample> s = random_samples({9, 20, 6}, 4, 3);
  const InstructDataset padded({s[0]}, s, 32, false);
  const Batch b = padded.val_batch(0, 3);
  const Tensor l1 = m.loss(b.ids, b.targets);
  const double v1 = l1.item();
  const std::vector<double> g1 = grads_of(m, l1);
  // Other ids in the padding: the same loss and gradient, bit for bit.
  std::vector<int32_t> ids = b.ids.to_i32_vector();
  const int64_t T = b.ids.dim(1);
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t t = static_cast<int64_t>(s[static_cast<size_t>(r)].ids.size()) - 1; t < T; ++t)
      ids[static_cast<size_t>(r * T + t)] = static_cast<int32_t>((r + t) % 37);
  const Tensor l2 = m.loss(Tensor::from_i32(ids, b.ids.shape()), b.targets);
  CHECK(l2.item() == v1);
  CHECK(grads_of(m, l2) == g1);
  // The loss is the mean −log p over the scored (response) targets only, and the logits of
  // masked positions get exactly zero gradient.
  Tensor logits;
  {
    NoGrad ng;
    logits = m.forward(b.ids);
  }
  Tensor leaf = logits.clone().set_requires_grad(true);
  backward(ops::cross_entropy(leaf, b.targets));
  const std::vector<double> lg = leaf.grad().to_f64_vector(), lv = logits.to_f64_vector();
  const std::vector<int32_t> tg = b.targets.to_i32_vector();
  const int64_t V = 37;
  double nll = 0;
  int64_t n = 0, masked = 0;
  for (size_t r = 0; r < tg.size(); ++r) {
    const double* row = lv.data() + r * V;
    if (tg[r] < 0) {
      ++masked;
      for (int64_t v = 0; v < V; ++v) CHECK(lg[r * V + static_cast<size_t>(v)] == 0.0);
      continue;
    }
    double mx = row[0], z = 0;
    for (int64_t v = 0; v < V; ++v) mx = std::max(mx, row[v]);
    for (int64_t v = 0; v < V; ++v) z += std::exp(row[v] - mx);
    nll += mx + std::log(z) - row[tg[r]];
    ++n;
  }
  CHECK(masked >= 3 * 3);  // each sample's prompt (3 masked targets) and the padding
  CHECK(n == (9 - 4) + (20 - 4) + (6 - 4));
  CHECK(std::abs(nll / static_cast<double>(n) - v1) <= cg::testing::tol::kLossAbs);
}

TEST_CASE("instruct: the same seed gives bit-identical training losses, padded and packed") {
  const std::vector<Sample> s = random_samples({9, 14, 6, 12, 3, 17, 8, 5}, 2, 4);
  for (bool pack : {false, true}) {
    INFO("pack " << pack);
    const InstructDataset ds(s, {}, 32, pack);
    std::vector<double> runs[2];
    for (auto& losses : runs) {
      LlamaModel base(tiny_config(32), 5);
      base.params().set_trainable(true);
      TrainOptions to;
      to.batch = 2;
      to.accum = 2;
      to.data_seed = 9;
      nn::OptimConfig oc;
      oc.lr = 1e-2;
      Trainer tr(base, base.params(), oc, ds, to);
      for (int i = 0; i < 4; ++i) losses.push_back(tr.step().loss);
      CHECK(tr.data_position() == 16);
    }
    CHECK(runs[0] == runs[1]);
  }
}

TEST_CASE("instruct: LLM-Adapters' training files load as records") {
  const std::string dir = "../shared/data/llm_adapters/dataset/";
  if (!cg::testing::have_file(dir)) return;
  const std::vector<std::pair<std::string, size_t>> files{{"boolq/train.json", 9427},
                                                          {"ARC-Easy/train.json", 2251},
                                                          {"ARC-Challenge/train.json", 1119},
                                                          {"openbookqa/train.json", 4957},
                                                          {"openbookqa/test.json", 500}};
  for (const auto& [f, n] : files) {
    INFO(f);
    const std::vector<InstructRecord> r = read_instruct_records(dir + f);
    CHECK(r.size() == n);
    CHECK(r[0].messages.empty());
    CHECK(r[0].output.rfind("the correct answer is ", 0) == 0);
  }
}
