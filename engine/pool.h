// engine/pool.h — a free-list allocator for the small objects a training step creates and
// drops by the hundred: the shared_ptr control blocks of TensorImpl and Storage (the tensor
// *data* comes from the backend's block cache) and chain_matmul's product trees.
// make_pooled<T>(args...) is std::make_shared<T> with memory from one free list per block
// size; a released block goes back on its list, never to the system, so once a step has
// run, the next identical step pops every block it needs and calls no operator new.
// Blocks may be released on any thread: each list is guarded by a spinlock (a push or pop
// is a few instructions, far from contended).
// Sanitizer builds (CG_NO_ALLOC_CACHE) bypass the lists — plain new/delete — so ASan sees
// every use after free, as with the backend's block cache.
#pragma once
#include <atomic>
#include <cstddef>
#include <memory>
#include <new>
#include <utility>

namespace cg {
namespace pool_detail {

// A LIFO list of free blocks of one size, linked through their first bytes.
class FreeList {
 public:
  void* pop() {
    lock();
    Link* b = head_;
    if (b) head_ = b->next;
    unlock();
    return b;
  }
  void push(void* p) {
    Link* b = static_cast<Link*>(p);
    lock();
    b->next = head_;
    head_ = b;
    unlock();
  }

 private:
  struct Link {
    Link* next;
  };
  void lock() {
    while (busy_.test_and_set(std::memory_order_acquire)) {
    }
  }
  void unlock() { busy_.clear(std::memory_order_release); }
  std::atomic_flag busy_ = ATOMIC_FLAG_INIT;
  Link* head_ = nullptr;
};

// One list per block size. Trivially destructible on purpose: a tensor released during
// static destruction (a thread_local tape, a global cache) still finds its list.
template <std::size_t Size>
FreeList& free_list() {
  static FreeList list;
  return list;
}

}  // namespace pool_detail

// A standard allocator over the free lists (what std::allocate_shared needs).
template <class T>
struct PoolAllocator {
  using value_type = T;
  static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__, "PoolAllocator: over-aligned type");
  // Block size: a multiple of 16 (so sizes that differ by a few bytes share a list) that
  // can hold the list's link.
  static constexpr std::size_t kBlock = (sizeof(T) + 15) / 16 * 16;

  PoolAllocator() = default;
  template <class U>
  PoolAllocator(const PoolAllocator<U>&) {}  // NOLINT: rebinding, as allocate_shared does

  T* allocate(std::size_t n) {
#ifndef CG_NO_ALLOC_CACHE
    if (n == 1) {
      if (void* p = pool_detail::free_list<kBlock>().pop()) return static_cast<T*>(p);
      return static_cast<T*>(::operator new(kBlock));
    }
#endif
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) {
#ifndef CG_NO_ALLOC_CACHE
    if (n == 1) {
      pool_detail::free_list<kBlock>().push(p);
      return;
    }
#endif
    std::allocator<T>().deallocate(p, n);
  }
  template <class U>
  bool operator==(const PoolAllocator<U>&) const {
    return true;
  }
};

// std::make_shared<T>(args...), with the object and its control block in a pooled block.
template <class T, class... Args>
std::shared_ptr<T> make_pooled(Args&&... args) {
  return std::allocate_shared<T>(PoolAllocator<T>(), std::forward<Args>(args)...);
}

}  // namespace cg
