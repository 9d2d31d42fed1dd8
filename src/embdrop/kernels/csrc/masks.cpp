// ------------------------------------------------------------------------------------------------ keep-mask draw
// Hashed keep-masks drawn in the kernel from one key: written out, or applied without being written.
#include "common.h"

namespace embdrop {


// Entries s..e-1 (e <= 2^32): kept when hash(i) <= last (threshold - 1; callers handle threshold 0), in 32-bit
// lanes so that the loop vectorises at full width.
template <typename scalar_t>
__attribute__((noinline)) void keep_range(int64_t s, int64_t e, uint32_t s0, uint32_t s1, uint32_t last,
                                          scalar_t* __restrict__ out) {
  const uint32_t base = static_cast<uint32_t>(s);
  out += s;
  for (int64_t k = 0; k < e - s; ++k) {
    const uint32_t u = mix32(mix32((base + static_cast<uint32_t>(k)) ^ s0) + s1);
    out[k] = u <= last ? scalar_t(1) : scalar_t(0);
  }
}

Tensor keep_mask(std::vector<int64_t> shape, int64_t threshold, int64_t seed, at::ScalarType dtype) {
  Tensor out = at::empty(shape, at::TensorOptions().dtype(dtype));
  const uint64_t key = static_cast<uint64_t>(seed);
  const uint32_t s0 = static_cast<uint32_t>(key), s1 = static_cast<uint32_t>(key >> 32);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, dtype, "embdrop_keep_mask", [&] {
    scalar_t* o = ptr<scalar_t>(out);
    if (threshold == 0) {
      out.zero_();
      return;
    }
    const uint32_t last = static_cast<uint32_t>(threshold - 1);
    at::parallel_for(0, out.numel(), kGrain, [&](int64_t s, int64_t e) { keep_range<scalar_t>(s, e, s0, s1, last, o); });
  });
  return out;
}

template <typename scalar_t>
__attribute__((noinline)) void scale_range(int64_t s, int64_t e, uint32_t s0, uint32_t s1, uint32_t last, scalar_t v,
                                           const scalar_t* __restrict__ in, scalar_t* __restrict__ out) {
  const uint32_t base = static_cast<uint32_t>(s);
  in += s;
  out += s;
  for (int64_t k = 0; k < e - s; ++k) {
    const uint32_t u = mix32(mix32((base + static_cast<uint32_t>(k)) ^ s0) + s1);
    out[k] = u <= last ? in[k] * v : scalar_t(0);
  }
}

// The same mask applied without writing it: x[i] * value where hash(i) < threshold, else 0. Weight drop's forward
// (x the weight, value 1/(1-p)) and its backward (x the weight's gradient) in one pass each.
Tensor hashed_scale(Tensor x, int64_t threshold, int64_t seed, double value) {
  TORCH_CHECK(x.is_contiguous(), "hashed_scale: a contiguous tensor expected");
  TORCH_CHECK(x.numel() <= (int64_t(1) << 32), "hashed_scale: at most 2^32 entries");
  Tensor out = at::empty_like(x);
  const uint64_t key = static_cast<uint64_t>(seed);
  const uint32_t s0 = static_cast<uint32_t>(key), s1 = static_cast<uint32_t>(key >> 32);
  if (threshold == 0) return out.zero_();
  const uint32_t last = static_cast<uint32_t>(threshold - 1);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "embdrop_hashed_scale", [&] {
    const scalar_t* in = ptr<scalar_t>(x);
    scalar_t* o = ptr<scalar_t>(out);
    const scalar_t v = static_cast<scalar_t>(value);
    at::parallel_for(0, x.numel(), kGrain,
                     [&](int64_t s, int64_t e) { scale_range<scalar_t>(s, e, s0, s1, last, v, in, o); });
  });
  return out;
}


}  // namespace embdrop
