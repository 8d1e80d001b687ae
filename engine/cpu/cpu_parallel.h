// engine/cpu/cpu_parallel.h — how CPU kernels split a loop over threads: parallel_for
// (independent iterations) and parallel_range (contiguous pieces, for loops that should
// vectorise). Below the work threshold both are a plain serial loop with no thread
// machinery; above it the iterations are split statically over a small pool of worker
// threads that sleep when idle (why not OpenMP: docs/design-notes.md, "CPU worker pool").
// The thread count is the one set_num_threads() gives OpenMP and OpenBLAS. Iterations must
// be independent, so results never depend on it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace cg::cpu {

// The number of threads kernels may use (set_num_threads; at least 1).
int max_threads();

// Runs job(ctx, part, parts) for part in [0, parts) — part 0 on the calling thread, the
// others on pool workers — and returns when all are done. parts ≤ max_threads(). A call
// from inside a job runs every part serially on the caller.
void run_parts(int parts, void (*job)(void* ctx, int part, int parts), void* ctx);

// True while the calling thread is running a part of run_parts.
bool in_parallel();

// Calls f(b, e) on contiguous pieces covering [0, n): (0, n) at once when work ≤
// threshold or one thread is set; otherwise one static piece per thread.
template <class F>
inline void parallel_range(int64_t n, int64_t work, int64_t threshold, F&& f) {
  const int nt = max_threads();
  if (work <= threshold || n < 2 || nt < 2 || in_parallel()) {
    f(int64_t{0}, n);
    return;
  }
  const int parts = static_cast<int>(n < nt ? n : nt);
  struct Ctx {
    F* f;
    int64_t n;
  } ctx{&f, n};
  run_parts(
      parts,
      [](void* c, int part, int np) {
        const Ctx& x = *static_cast<Ctx*>(c);
        const int64_t chunk = (x.n + np - 1) / np;
        const int64_t b = part * chunk, e = b + chunk < x.n ? b + chunk : x.n;
        if (b < e) (*x.f)(b, e);
      },
      &ctx);
}
template <class F>
inline void parallel_range(int64_t n, int64_t threshold, F&& f) {
  parallel_range(n, n, threshold, static_cast<F&&>(f));
}

// Calls f(i) for i in [0, n); split over threads only when work > threshold. `work` is
// the caller's size of the whole loop (elements touched), not n.
template <class F>
inline void parallel_for(int64_t n, int64_t work, int64_t threshold, F&& f) {
  parallel_range(n, work, threshold, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) f(i);
  });
}

// A per-thread scratch buffer of at least n elements that lives across calls, so kernels
// that need a small work area (partial sums) do not touch the heap once it has grown to
// the step's largest request. `slot` keeps buffers used together apart. Contents are
// unspecified on return.
template <class T>
inline T* scratch(int slot, size_t n) {
  thread_local std::vector<T> bufs[4];
  std::vector<T>& b = bufs[slot];
  if (b.size() < n) b.resize(n);
  return b.data();
}

// Thresholds (elements touched) above which a loop is worth waking the workers.
constexpr int64_t kParElementwise = 65536;  // one cheap op per element
constexpr int64_t kParRowwise = 32768;      // a few ops per element (exp, norms)

}  // namespace cg::cpu
