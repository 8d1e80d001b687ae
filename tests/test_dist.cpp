// tests/test_dist.cpp — data-parallel training without MPI: the single-process communicator,
// world() outside a launcher, and the Trainer's sharding and reduction checked against one
// process. Two ranks are simulated in turn with a recording communicator: rank 1's step
// records its local gradient and loss; rank 0's step adds them in its all-reduce, so rank 0
// ends up where a real two-rank job would. The real MPI runs are in scripts/test-mpi.sh.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "models/text/data.h"
#include "models/llama/llama.h"
#include "models/train/trainer.h"
#include "nn/dist/dist.h"
#include "tests/skip.h"

using namespace cg;
using namespace cg::models;

namespace {

// Rank `r` of `n`: sums in `peer` (another rank's contribution) when it has one, and keeps
// what this rank brought to the all-reduce.
class RecordingRank final : public nn::Communicator {
 public:
  RecordingRank(int r, int n) : r_(r), n_(n) {}
  int rank() const override { return r_; }
  int size() const override { return n_; }
  void allreduce_sum(Tensor& t, std::span<double> extra) override {
    ++calls;
    local = t.to_f32_vector();
    local_extra.assign(extra.begin(), extra.end());
    float* d = t.data<float>();
    for (size_t i = 0; i < peer.size(); ++i) d[i] += peer[i];
    for (size_t i = 0; i < peer_extra.size(); ++i) extra[i] += peer_extra[i];
  }
  void barrier() override {}
  [[noreturn]] void abort(int, const std::string& why) override { throw Error("abort: " + why); }
  std::string name() const override { return "recording"; }

  std::vector<float> peer, local;
  std::vector<double> peer_extra, local_extra;
  int calls = 0;

 private:
  int r_, n_;
};

LlamaConfig tiny() {
  LlamaConfig c;
  c.dim = 16;
  c.hidden_dim = 32;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 2;
  c.vocab_size = 32;
  c.seq_len = 8;
  return c;
}

TokenDataset dataset() {
  std::vector<int32_t> toks(600);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int32_t>((i * 7 + i / 5) % 32);
  return TokenDataset(toks, 0.0, 8);
}

struct Result {
  StepStats stats;
  std::vector<double> update;  // parameters after the step − before
};

// One optimizer step of a fresh model (same seed every time) as rank `comm` (or alone).
Result one_step(const TokenDataset& ds, const nn::OptimConfig& oc, int64_t accum, nn::Communicator* comm) {
  LlamaModel model(tiny(), 5);
  model.params().set_trainable(true);
  TrainOptions to;
  to.batch = 4;
  to.accum = accum;
  to.data_seed = 3;
  to.comm = comm;
  Trainer tr(model, model.params(), oc, ds, to);
  tr.set_data_position(8);
  const std::vector<double> before = model.params().flat().to_f64_vector();
  Result r;
  r.stats = tr.step();
  r.update = model.params().flat().to_f64_vector();
  for (size_t i = 0; i < r.update.size(); ++i) r.update[i] -= before[i];
  CHECK(tr.data_position() == 8 + 4 * accum);  // the global batch, whatever the rank
  return r;
}

}  // namespace

TEST_CASE("dist: the single-process communicator changes nothing") {
  nn::SingleProcess one;
  CHECK(one.rank() == 0);
  CHECK(one.size() == 1);
  CHECK(one.lead());
  Tensor t = Tensor::from({1.5, -2.0, 3.25}, Shape{3});
  double extra[2] = {4.0, 5.0};
  one.allreduce_sum(t, extra);
  CHECK(t.to_f64_vector() == std::vector<double>{1.5, -2.0, 3.25});
  CHECK(extra[0] == 4.0);
  CHECK(extra[1] == 5.0);
}

TEST_CASE("dist: world() outside an MPI launcher is one process") {
  if (nn::launcher_size() > 1) {
    cg::testing::skip(cg::testing::SkipKind::Other, "the test binary runs under an MPI launcher");
    return;
  }
  nn::Communicator& w = nn::world();
  CHECK(w.size() == 1);
  CHECK(w.rank() == 0);
  CHECK(&w == &nn::world());
}

TEST_CASE("dist: two simulated ranks take one step exactly like one process over the global batch") {
  const TokenDataset ds = dataset();
  for (std::string opt : {"sgd", "adamw"})
    for (double clip : {0.0, 0.05})  // 0.05 is below the gradient norm: clipping acts
      for (int64_t accum : {1, 2}) {
        CAPTURE(opt);
        CAPTURE(clip);
        CAPTURE(accum);
        nn::OptimConfig oc;
        oc.name = opt;
        oc.lr = 0.5;
        oc.clip = clip;
        const Result single = one_step(ds, oc, accum, nullptr);

        RecordingRank r1(1, 2);
        one_step(ds, oc, accum, &r1);
        RecordingRank r0(0, 2);
        r0.peer = r1.local;
        r0.peer_extra = r1.local_extra;
        const Result dp = one_step(ds, oc, accum, &r0);

        CHECK(r0.calls == 1);  // one all-reduce per step, accumulation included
        CHECK(r1.calls == 1);
        REQUIRE(r0.local_extra.size() == 2);  // the loss sum and the stop flag (no signal: 0)
        CHECK(r0.local_extra[1] == 0);
        // The shards differ (rank r reads its own samples), and each holds half the mean.
        CHECK(r0.local_extra[0] != r1.local_extra[0]);
        CHECK(dp.stats.loss == doctest::Approx(single.stats.loss).epsilon(1e-6));
        CHECK(dp.stats.grad_norm == doctest::Approx(single.stats.grad_norm).epsilon(1e-5));
        // The parameter updates agree as vectors: ‖Δdp − Δ1‖ / ‖Δ1‖ (a missing 1/N, or
        // clipping per rank before the reduction, gives an error of order 1).
        REQUIRE(dp.update.size() == single.update.size());
        double diff2 = 0, ref2 = 0;
        for (size_t i = 0; i < dp.update.size(); ++i) {
          diff2 += (dp.update[i] - single.update[i]) * (dp.update[i] - single.update[i]);
          ref2 += single.update[i] * single.update[i];
        }
        const double rel = std::sqrt(diff2 / ref2);
        CHECK(ref2 > 0);
        CHECK(rel < 1e-5);
        MESSAGE(opt << " clip " << clip << " accum " << accum << ": loss " << single.stats.loss << " vs "
                    << dp.stats.loss << ", update rel. diff " << rel);
      }
}

TEST_CASE("dist: a global batch the ranks cannot split evenly is a clear error") {
  const TokenDataset ds = dataset();
  LlamaModel model(tiny(), 5);
  model.params().set_trainable(true);
  RecordingRank r(0, 3);
  TrainOptions to;
  to.batch = 4;
  to.comm = &r;
  CHECK_THROWS_WITH_AS(Trainer(model, model.params(), nn::OptimConfig{}, ds, to),
                       doctest::Contains("not divisible by 3 processes"), FormatError);
}
