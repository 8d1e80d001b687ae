// nn/dist/dist.cpp — the single-process communicator, launcher detection, GPU-per-rank binding
// and the job's world() communicator. The MPI implementation is in nn/dist/dist_mpi.cpp.
#include "nn/dist/dist.h"

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "engine/error.h"

namespace cg::nn {

#ifdef CG_WITH_MPI
namespace detail {
std::unique_ptr<Communicator> make_mpi_communicator();  // nn/dist/dist_mpi.cpp
}  // namespace detail
#endif

namespace {

// The first of `names` set in the environment, as an int; `fallback` when none is.
int env_int(std::initializer_list<const char*> names, int fallback) {
  for (const char* n : names)
    if (const char* v = std::getenv(n); v && *v) return std::atoi(v);
  return fallback;
}

bool launched_by_mpi() {
  for (const char* n : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(n)) return true;
  return false;
}

// One GPU per rank: with several ranks on this machine, local rank i sees only the i-th
// visible GPU (of CUDA_VISIBLE_DEVICES when set, else GPU i), so the CUDA backend's
// device 0 is a different GPU in each rank. Must run before the CUDA runtime starts.
void bind_local_gpu() {
  const int local_size = env_int({"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"}, 1);
  const int local_rank = env_int({"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"}, 0);
  if (local_size <= 1) return;
  std::string pick = std::to_string(local_rank);
  if (const char* v = std::getenv("CUDA_VISIBLE_DEVICES"); v && *v) {
    std::vector<std::string> ids;
    std::string cur;
    for (const char* p = v;; ++p) {
      if (*p == ',' || *p == '\0') {
        if (!cur.empty()) ids.push_back(cur);
        cur.clear();
        if (*p == '\0') break;
      } else {
        cur += *p;
      }
    }
    if (ids.size() <= 1) return;  // one device given: the user decided
    pick = ids[static_cast<size_t>(local_rank) % ids.size()];
  }
  setenv("CUDA_VISIBLE_DEVICES", pick.c_str(), 1);
}

std::unique_ptr<Communicator>& world_slot() {
  static std::unique_ptr<Communicator> w;
  return w;
}

}  // namespace

void SingleProcess::abort(int code, const std::string& why) {
  if (!why.empty()) std::fprintf(stderr, "%s\n", why.c_str());
  std::fflush(nullptr);
  std::_Exit(code);
}

bool built_with_mpi() {
#ifdef CG_WITH_MPI
  return true;
#else
  return false;
#endif
}

int launcher_size() { return launched_by_mpi() ? env_int({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"}, 1) : 1; }

Communicator& world() {
  auto& w = world_slot();
  if (w) return *w;
  if (launched_by_mpi()) {
    bind_local_gpu();
#ifdef CG_WITH_MPI
    w = detail::make_mpi_communicator();
#else
    const int n = launcher_size();
    if (n > 1)
      throw DeviceError("launched by an MPI launcher with " + std::to_string(n) +
                        " processes, but this build has no MPI (install libopenmpi-dev and rebuild)");
#endif
  }
  if (!w) w = std::make_unique<SingleProcess>();
  return *w;
}

int finish(int code) {
  auto& w = world_slot();
  if (!w) return code;
  // 3 (non-finite loss/gradient) and 128 + SIGINT/SIGTERM are reached by all ranks together
  // (the stop travels in the step's all-reduce): a normal MPI_Finalize, then that code.
  const bool together = code == 3 || code == 130 || code == 143;
  if (code != 0 && !together && w->size() > 1) w->abort(code, "");
  w.reset();  // MPI_Finalize for the MPI communicator
  return code;
}

}  // namespace cg::nn
