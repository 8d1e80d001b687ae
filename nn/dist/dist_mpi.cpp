// nn/dist/dist_mpi.cpp — the MPI communicator (built only when the Makefile finds MPI, with
// CG_WITH_MPI). CPU tensors: MPI_Allreduce in place (through one reused host buffer when
// scalars ride along). CUDA tensors: NCCL on a stream of its own when built with CUDA and
// NCCL (CG_WITH_NCCL; one GPU per rank, the communicator made on first use from an id that
// rank 0 broadcasts over MPI), else copied to the host, reduced by MPI and copied back.
// This file and its CUDA runtime calls are the one place outside engine/ that names CUDA:
// NCCL needs raw device pointers and a stream, and the engine does not link NCCL.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <vector>

#include "engine/backend.h"
#include "engine/error.h"
#include "nn/dist/dist.h"

#ifdef CG_WITH_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#endif

namespace cg::nn {

namespace {

constexpr int64_t kMaxCount = INT_MAX / 2;  // MPI counts are ints: reduce huge buffers in chunks

void check_float(const Tensor& t) {
  if (!is_float(t.dtype())) throw DTypeError("allreduce_sum: " + t.desc() + " is not a float tensor");
}

#ifdef CG_WITH_NCCL
void nccl_check(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) throw DeviceError(std::string("nccl: ") + what + ": " + ncclGetErrorString(r));
}
void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw DeviceError(std::string("nccl: ") + what + ": " + cudaGetErrorString(e));
}
#endif

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
      int provided = 0;
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);  // only the main thread calls MPI
      owns_mpi_ = true;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~MpiCommunicator() override {
#ifdef CG_WITH_NCCL
    if (nccl_) {
      ncclCommDestroy(nccl_);
      cudaStreamDestroy(stream_);
      cudaFree(extra_dev_);
    }
#endif
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_mpi_ && !finalized) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override {
#ifdef CG_WITH_NCCL
    return "mpi+nccl";
#else
    return "mpi";
#endif
  }
  void barrier() override { MPI_Barrier(MPI_COMM_WORLD); }
  [[noreturn]] void abort(int code, const std::string& why) override {
    if (!why.empty()) std::fprintf(stderr, "%s\n", why.c_str());
    std::fflush(nullptr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; this keeps [[noreturn]] honest
  }

  void allreduce_sum(Tensor& t, std::span<double> extra) override {
    check_float(t);
    if (size_ == 1) return;
    if (t.device() == Device::CUDA) {
#ifdef CG_WITH_NCCL
      nccl_allreduce(t, extra);
#else
      Tensor host = t.to(Device::CPU);
      host_allreduce(host, extra);
      t.copy_from(host);
#endif
      return;
    }
    host_allreduce(t, extra);
  }

 private:
  void host_allreduce(Tensor& t, std::span<double> extra) {
    if (t.dtype() == DType::F64) host_allreduce_typed<double>(t, extra, MPI_DOUBLE);
    else host_allreduce_typed<float>(t, extra, MPI_FLOAT);
  }

  template <class T>
  void host_allreduce_typed(Tensor& t, std::span<double> extra, MPI_Datatype type) {
    const int64_t n = t.numel();
    T* data = t.data<T>();
    if (extra.empty()) {
      reduce_in_place(data, n, type);
      return;
    }
    // One collective for both: [t..., extra...] in a host buffer kept across calls.
    const size_t total = static_cast<size_t>(n) + extra.size();
    if (staging_.size() < total * sizeof(T)) staging_.resize(total * sizeof(T));
    T* buf = reinterpret_cast<T*>(staging_.data());
    std::memcpy(buf, data, static_cast<size_t>(n) * sizeof(T));
    for (size_t i = 0; i < extra.size(); ++i) buf[n + static_cast<int64_t>(i)] = static_cast<T>(extra[i]);
    reduce_in_place(buf, static_cast<int64_t>(total), type);
    std::memcpy(data, buf, static_cast<size_t>(n) * sizeof(T));
    for (size_t i = 0; i < extra.size(); ++i) extra[i] = static_cast<double>(buf[n + static_cast<int64_t>(i)]);
  }

  template <class T>
  void reduce_in_place(T* data, int64_t n, MPI_Datatype type) {
    for (int64_t off = 0; off < n; off += kMaxCount) {
      const int count = static_cast<int>(std::min(kMaxCount, n - off));
      MPI_Allreduce(MPI_IN_PLACE, data + off, count, type, MPI_SUM, MPI_COMM_WORLD);
    }
  }

#ifdef CG_WITH_NCCL
  void nccl_init() {
    ncclUniqueId id;
    if (rank_ == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    nccl_check(ncclCommInitRank(&nccl_, size_, id, rank_), "ncclCommInitRank");
  }

  void nccl_allreduce(Tensor& t, std::span<double> extra) {
    if (!nccl_) nccl_init();
    const bool f64 = t.dtype() == DType::F64;
    const ncclDataType_t type = f64 ? ncclDouble : ncclFloat;
    const size_t esize = f64 ? sizeof(double) : sizeof(float);
    backend_for(Device::CUDA).synchronize();  // the gradients are written on the engine's stream
    if (!extra.empty()) {
      const size_t bytes = extra.size() * esize;
      if (extra_bytes_ < bytes) {
        cudaFree(extra_dev_);
        cuda_check(cudaMalloc(&extra_dev_, bytes), "cudaMalloc");
        extra_bytes_ = bytes;
      }
      extra_host_.resize(bytes);
      for (size_t i = 0; i < extra.size(); ++i) {
        if (f64) reinterpret_cast<double*>(extra_host_.data())[i] = extra[i];
        else reinterpret_cast<float*>(extra_host_.data())[i] = static_cast<float>(extra[i]);
      }
      cuda_check(cudaMemcpyAsync(extra_dev_, extra_host_.data(), bytes, cudaMemcpyHostToDevice, stream_),
                 "cudaMemcpyAsync");
    }
    // Grouped: the gradient and the scalars go out as one NCCL launch.
    nccl_check(ncclGroupStart(), "ncclGroupStart");
    nccl_check(ncclAllReduce(t.raw(), t.raw(), static_cast<size_t>(t.numel()), type, ncclSum, nccl_, stream_),
               "ncclAllReduce");
    if (!extra.empty())
      nccl_check(ncclAllReduce(extra_dev_, extra_dev_, extra.size(), type, ncclSum, nccl_, stream_), "ncclAllReduce");
    nccl_check(ncclGroupEnd(), "ncclGroupEnd");
    if (!extra.empty())
      cuda_check(cudaMemcpyAsync(extra_host_.data(), extra_dev_, extra.size() * esize, cudaMemcpyDeviceToHost, stream_),
                 "cudaMemcpyAsync");
    cuda_check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    for (size_t i = 0; i < extra.size(); ++i)
      extra[i] = f64 ? reinterpret_cast<double*>(extra_host_.data())[i]
                     : reinterpret_cast<float*>(extra_host_.data())[i];
  }

  ncclComm_t nccl_ = nullptr;
  cudaStream_t stream_ = nullptr;
  void* extra_dev_ = nullptr;
  size_t extra_bytes_ = 0;
  std::vector<char> extra_host_;
#endif

  int rank_ = 0, size_ = 1;
  bool owns_mpi_ = false;
  std::vector<char> staging_;
};

}  // namespace

namespace detail {
std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }
}  // namespace detail

}  // namespace cg::nn
