// tests/test_block_cache.cpp — the CPU backend's block cache (engine/cpu/cpu_memory.cpp):
// a block is reused by a request of its size or a little smaller, and when the shapes
// change from step to step (records padded to the longest of their batch) the free blocks
// it holds stay near one step's live memory instead of growing with every new shape.
#include <doctest/doctest.h>

#include <vector>

#include "engine/backend.h"
#include "engine/cpu/cpu_backend.h"

using namespace cg;

#ifndef CG_NO_ALLOC_CACHE  // sanitizer builds hand every block back to the system
namespace {
CpuBackend& cpu() { return dynamic_cast<CpuBackend&>(backend_for(Device::CPU)); }

// One "step": blocks of the given sizes, all live at once, then all released.
void step(const std::vector<size_t>& sizes) {
  std::vector<void*> blocks;
  for (size_t s : sizes) blocks.push_back(cpu().alloc(s));
  for (size_t i = 0; i < blocks.size(); ++i) cpu().release(blocks[i], sizes[i]);
}
}  // namespace

TEST_CASE("block cache: the same shapes every step are served from the cache") {
  const std::vector<size_t> sizes = {1 << 20, 3000, 1 << 20, 64, 777777};
  step(sizes);
  const int64_t sys0 = cpu().stats().system_allocs;
  for (int i = 0; i < 5; ++i) step(sizes);
  CHECK(cpu().stats().system_allocs == sys0);
}

TEST_CASE("block cache: a slightly smaller request reuses a free block, a much smaller one does not") {
  cpu().trim();
  step({1 << 22});  // one free block of 4 MiB
  const int64_t sys0 = cpu().stats().system_allocs;
  step({(1 << 22) - (1 << 19)});  // 3.5 MiB: within the slack
  CHECK(cpu().stats().system_allocs == sys0);
  step({1 << 20});  // 1 MiB: a new block (a 4 MiB one would waste 3)
  CHECK(cpu().stats().system_allocs == sys0 + 1);
}

TEST_CASE("block cache: shapes that change every step keep the free blocks near one step's size") {
  // Step t holds 8 blocks of (1 + t/8) MiB, each step's sizes new (more than the slack
  // apart every 2 steps); an exact-size cache would end up holding the sum over all steps.
  cpu().trim();
  int64_t worst = 0, one_step = 0;
  for (int t = 0; t < 40; ++t) {
    const size_t mb = (size_t{1} << 20) + static_cast<size_t>(t) * (size_t{1} << 17);
    step(std::vector<size_t>(8, mb));
    one_step = std::max<int64_t>(one_step, static_cast<int64_t>(8 * mb));
    worst = std::max(worst, cpu().cached_bytes());
  }
  MESSAGE("largest step ", one_step, " B; most held free ", worst, " B");
  CHECK(worst <= 2 * one_step);
}
#endif
