// engine/cpu/cpu_backend.h — the CPU implementation of the backend table: OpenBLAS for
// GEMM (oneDNN for bf16 GEMMs where built in and the CPU has bf16 instructions),
// parallel_for loops (engine/cpu/cpu_parallel.h: serial below a size threshold, a
// sleeping worker pool above it) and `omp simd` vectorisation for everything else. Loops
// are parallel only over independent outputs, and every reduction runs in a fixed order,
// so results never depend on the thread count. Kernels are split by family:
// cpu_memory.cpp, cpu_gemm.cpp (+ cpu_dnnl.cpp), cpu_elementwise.cpp, cpu_nn.cpp, cpu_optim.cpp.
#pragma once
#include <map>
#include <mutex>
#include <vector>

#include "engine/backend.h"

namespace cg {

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::CPU; }

  void* alloc(size_t bytes) override;
  void release(void* p, size_t bytes) override;
  int64_t cached_bytes();  // bytes of the free blocks the cache holds (cpu_memory.cpp)
  void trim();             // every free block back to the system
  void to_host(void* dst, const void* src, size_t bytes) override;
  void from_host(void* dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void fill(Tensor& t, double value) override;

  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override;
  void sum_to(const Tensor& x, Tensor& out) override;
  void unary(UnaryOp op, const Tensor& x, Tensor& y, double s) override;
  void unary_backward(UnaryOp op, const Tensor& x, const Tensor& gy, Tensor& gx, double s) override;
  void axpy(double alpha, const Tensor& x, Tensor& y) override;
  double sum_squares(const Tensor& x) override;
  void copy_box(DType dt, const void* src, const int64_t src_strides[4], void* dst, const int64_t dst_strides[4],
                const int64_t shape[4], bool accumulate) override;

  void softmax(const Tensor& x, Tensor& y, bool log, int64_t causal_tq, int64_t causal_offset) override;
  void softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, bool log) override;
  void rmsnorm(const Tensor& x, const Tensor& w, Tensor& y, Tensor& rstd, double eps) override;
  void rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& gy, Tensor* gx,
                        Tensor* gw) override;
  void layernorm(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, Tensor& mean, Tensor& rstd,
                 double eps) override;
  void layernorm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd, const Tensor& gy,
                          Tensor* gx, Tensor* gw, Tensor* gb) override;
  void rope(const Tensor& x, Tensor& y, int64_t pos_offset, double theta, bool inverse,
            const Tensor* positions) override;
  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override;
  void embedding_backward(const Tensor& ids, const Tensor& gy, Tensor& gtable) override;
  void cross_entropy(const Tensor& logits, const Tensor& targets, Tensor& loss, Tensor& lse) override;
  void cross_entropy_backward(const Tensor& logits, const Tensor& lse, const Tensor& targets, double scale,
                              Tensor& glogits) override;
  void dropout(const Tensor& x, Tensor& y, double p, uint64_t seed) override;

  void adamw(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, double lr, double beta1, double beta2, double eps,
             double weight_decay, int64_t step) override;
  void sgd(Tensor& param, const Tensor& grad, Tensor& buf, double lr, double momentum, double weight_decay) override;

 private:
  std::mutex mu_;
  std::map<size_t, std::vector<void*>> cache_;  // free blocks by size (cpu_memory.cpp)
  int64_t cached_bytes_ = 0;                    // bytes of the free blocks in cache_
  void trim_locked();                           // every free block back to the system; mu_ held

 protected:
  void do_gemm(const GemmArgs& g) override;  // cpu_gemm.cpp
  void gemm_bf16(const GemmArgs& g);         // cpu_gemm.cpp: GemmPrecision::BF16
};

// Calls f(T{}) with T = float or double for a float dtype; throws for i32.
template <class F>
void dispatch_float(DType dt, const char* what, F&& f) {
  if (dt == DType::F32) f(float{});
  else if (dt == DType::F64) f(double{});
  else throw DTypeError(std::string(what) + ": needs a float tensor, got " + dtype_name(dt));
}

}  // namespace cg
