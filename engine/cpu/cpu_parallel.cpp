// engine/cpu/cpu_parallel.cpp — the worker pool behind parallel_for / parallel_range:
// threads started on first use, woken per call through a condition variable, sleeping
// (not spinning) between calls. One call at a time (kernels run from one host thread).
#include "engine/cpu/cpu_parallel.h"

#include <omp.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace cg::cpu {
namespace {

thread_local bool t_in_parallel = false;

class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      ++generation_;
    }
    cv_.notify_all();
    for (std::thread& t : workers_) t.join();
  }

  void run(int parts, void (*job)(void*, int, int), void* ctx) {
    std::unique_lock<std::mutex> call(call_mu_);  // one call at a time
    {
      std::lock_guard<std::mutex> lock(mu_);
      while (static_cast<int>(workers_.size()) < parts - 1) {
        const int id = static_cast<int>(workers_.size()) + 1;
        workers_.emplace_back([this, id] { loop(id); });
      }
      job_ = job;
      ctx_ = ctx;
      parts_ = parts;
      pending_.store(parts - 1, std::memory_order_relaxed);
      ++generation_;
    }
    cv_.notify_all();
    t_in_parallel = true;
    job(ctx, 0, parts);
    t_in_parallel = false;
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
  }

 private:
  void loop(int id) {
    t_in_parallel = true;
    uint64_t seen = 0;
    for (;;) {
      void (*job)(void*, int, int);
      void* ctx;
      int parts;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (stop_) return;
        job = job_, ctx = ctx_, parts = parts_;
      }
      if (id >= parts) continue;  // this call needs fewer workers
      job(ctx, id, parts);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mu_);
        done_cv_.notify_one();
      }
    }
  }

  std::mutex call_mu_, mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  void (*job_)(void*, int, int) = nullptr;
  void* ctx_ = nullptr;
  int parts_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::atomic<int> pending_{0};
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

int max_threads() {
  const int n = omp_get_max_threads();  // set_num_threads sets OpenMP's count
  return n < 1 ? 1 : n;
}

bool in_parallel() { return t_in_parallel; }

void run_parts(int parts, void (*job)(void*, int, int), void* ctx) {
  if (parts <= 1 || t_in_parallel) {
    for (int p = 0; p < parts; ++p) job(ctx, p, parts);
    return;
  }
  pool().run(parts, job, ctx);
}

}  // namespace cg::cpu
