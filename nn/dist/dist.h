// nn/dist/dist.h — data-parallel communication between the processes of one training job: the
// Communicator interface (rank, size, an in-place sum all-reduce of a tensor, barrier,
// abort), the single-process communicator (every collective a no-op), and world(), the
// job's communicator. No networking of our own: under mpirun, MPI launches, connects and
// reduces (nn/dist/dist_mpi.cpp, built when the Makefile finds MPI; CUDA tensors go through NCCL
// when built with CUDA and NCCL, else through host memory). What is reduced and when is the
// trainer's business (models/train/trainer.h); nothing here knows about models or batches.
#pragma once
#include <memory>
#include <span>
#include <string>

#include "engine/tensor.h"

namespace cg::nn {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  bool lead() const { return rank() == 0; }  // the one rank that logs and writes files
  // Sums `t` (f32 or f64, any device) element-wise over all ranks, in place, and in the
  // same collective the host values `extra` (reduced in t's precision). Every rank must
  // call it with the same shapes, in the same order.
  virtual void allreduce_sum(Tensor& t, std::span<double> extra = {}) = 0;
  virtual void barrier() = 0;
  // Ends the whole job (every rank) with exit status `code`, printing `why` first.
  [[noreturn]] virtual void abort(int code, const std::string& why) = 0;
  virtual std::string name() const = 0;  // "single", "mpi", "mpi+nccl"
};

// One process: rank 0 of 1; the collectives change nothing.
class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(Tensor&, std::span<double>) override {}
  void barrier() override {}
  [[noreturn]] void abort(int code, const std::string& why) override;
  std::string name() const override { return "single"; }
};

// The job's communicator, created on first call (call it before any CUDA work: under an
// MPI launcher with several ranks per machine it gives each local rank its own GPU through
// CUDA_VISIBLE_DEVICES). MPI when an MPI launcher started this process (OMPI_COMM_WORLD_SIZE,
// PMI_SIZE or PMIX_RANK in the environment) and the build has MPI; otherwise one process.
// Throws DeviceError when launched with several ranks by a build without MPI (each rank
// would otherwise train alone and overwrite the others' files).
Communicator& world();
bool built_with_mpi();
// How many ranks the launcher says this job has (1 when not launched by MPI).
int launcher_size();

// The end of a tool's main: `return nn::finish(run_tool(...))`. Status 0: MPI_Finalize (when
// MPI was started). Non-zero with several ranks: aborts the job, so ranks still waiting in
// a collective end too instead of hanging — except 3, 130 and 143 (a non-finite step, SIGINT,
// SIGTERM), which every rank reaches together and which end with MPI_Finalize. Returns `code`.
int finish(int code);

}  // namespace cg::nn
