// The fused kernels' large buffers (a recurrence's saved tensors, its gradients, the products' outputs), kept for
// reuse once torch frees them, so that a training step does not fault its memory in again from the OS.
//
// With glibc's malloc, a step's buffers of a few MB each come from mmap or the heap's top, and are returned to the
// OS when freed (munmap, or a trim of the top); the next step then pays a page fault and the zeroing of every page
// it writes. Measured on the AMD EPYC (2 cores) at (B, T, C, H) = (32, 200, 64, 100): 1,600 to 12,500 page faults
// and up to 26 ms of system time per 44 ms training step, varying with the process's history
// (benchmarks/recurrent_blocks.py measures the pool on and off). Freed blocks are held here, up to a cap
// (EMBDROP_CPU_POOL_MB, default 1024; 0 turns the pool off; read and checked by build.py), and handed out again
// for a request of the same size or up to a quarter smaller; past the cap the largest held blocks are released.
// Buffers under 1 MiB are left to malloc, which keeps them.
#include "common.h"

#include <map>
#include <mutex>

namespace embdrop {

namespace {

constexpr size_t kPage = 4096, kMinPooled = size_t(1) << 20;

struct Pool {
  std::mutex m;
  std::multimap<size_t, void*> blocks;  // free blocks by size
  size_t held = 0, cap = size_t(1024) << 20;  // set from EMBDROP_CPU_POOL_MB when the extension loads (build.py)
};

// Never destroyed: a tensor freed at interpreter exit may still call give_back.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

// A block of at least n bytes; n becomes the size of the block handed out (a held one may be larger).
void* take(size_t& n) {
  Pool& p = pool();
  {
    std::lock_guard<std::mutex> lock(p.m);
    auto it = p.blocks.lower_bound(n);
    if (it != p.blocks.end() && it->first <= n + n / 4) {
      void* block = it->second;
      n = it->first;
      p.held -= n;
      p.blocks.erase(it);
      return block;
    }
  }
  void* block = std::aligned_alloc(64, n);
  if (!block) throw std::bad_alloc();
  return block;
}

void give_back(void* block, size_t n) {
  Pool& p = pool();
  std::vector<void*> release;
  {
    std::lock_guard<std::mutex> lock(p.m);
    if (n > p.cap) {
      release.push_back(block);
    } else {
      while (p.held + n > p.cap) {  // make room: the largest held blocks go first
        auto last = std::prev(p.blocks.end());
        p.held -= last->first;
        release.push_back(last->second);
        p.blocks.erase(last);
      }
      p.blocks.emplace(n, block);
      p.held += n;
    }
  }
  for (void* b : release) std::free(b);
}

}  // namespace

Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& opts) {
  int64_t numel = 1;
  for (int64_t s : sizes) numel *= s;
  const size_t bytes = size_t(numel) * c10::elementSize(c10::typeMetaToScalarType(opts.dtype()));
  if (bytes < kMinPooled || pool().cap == 0) return at::empty(sizes, opts);
  size_t n = (bytes + kPage - 1) / kPage * kPage;
  void* block = take(n);  // n: the block's whole size, which goes back with it
  return at::from_blob(block, sizes, [n](void* b) { give_back(b, n); }, opts);
}

Tensor pooled_contiguous(Tensor t) {
  if (t.is_contiguous()) return t;
  Tensor out = pooled_empty(t.sizes(), t.options());
  out.copy_(t);
  return out;
}

int64_t pool_held_bytes() {
  std::lock_guard<std::mutex> lock(pool().m);
  return int64_t(pool().held);
}

void set_pool_cap_mb(int64_t mb) {
  std::vector<void*> release;
  {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.m);
    p.cap = size_t(std::max<int64_t>(0, mb)) << 20;
    while (p.held > p.cap) {
      auto last = std::prev(p.blocks.end());
      p.held -= last->first;
      release.push_back(last->second);
      p.blocks.erase(last);
    }
  }
  for (void* b : release) std::free(b);
}

}  // namespace embdrop
