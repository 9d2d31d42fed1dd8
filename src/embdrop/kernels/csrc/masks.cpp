// ------------------------------------------------------------------------------------------------ keep-mask draw
// Hashed keep-masks drawn in the kernel from one key: written out, or applied without being written. And the
// masks drawn from torch's CPU generator, number for number as torch draws them.
#include <ATen/CPUGeneratorImpl.h>

#include <mutex>

#include "common.h"

namespace embdrop {

namespace {

constexpr int kMtN = 624, kMtM = 397;

inline uint32_t mt_twist(uint32_t u, uint32_t v) {
  return (((u & 0x80000000u) | (v & 0x7fffffffu)) >> 1) ^ ((v & 1u) ? 0x9908b0dfu : 0u);
}

// The Mersenne Twister's regeneration of its 624 words, as at::mt19937 does it, in loops the compiler vectorises
// (each word reads words at least 227 ahead of or behind it, never one the same vector writes).
__attribute__((noinline)) void mt_next_state(uint32_t* __restrict__ s) {
  for (int j = 0; j < kMtN - kMtM; ++j) s[j] = s[j + kMtM] ^ mt_twist(s[j], s[j + 1]);
  for (int j = kMtN - kMtM; j < kMtN - 1; ++j) s[j] = s[j + kMtM - kMtN] ^ mt_twist(s[j], s[j + 1]);
  s[kMtN - 1] = s[kMtM - 1] ^ mt_twist(s[kMtN - 1], s[0]);
}

// Tempered words s[0..n) to 0/1: kept when the low 24 bits (uniform_'s float, times 2^24) are below ``bound``.
__attribute__((noinline)) void mt_keep(const uint32_t* __restrict__ s, int64_t n, uint32_t bound,
                                       float* __restrict__ out) {
  for (int64_t k = 0; k < n; ++k) {
    uint32_t y = s[k];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    out[k] = (y & 0xffffffu) < bound ? 1.0f : 0.0f;
  }
}

}  // namespace

// float32 keep-mask of ``shape`` with the bits of ``torch.empty(shape).uniform_(generator=g).lt_(keep)``: uniform_
// takes one 32-bit word of the generator's Mersenne Twister per entry, in order, and keeps its low 24 bits times
// 2^-24; the comparison runs in float32. Here the words are made in blocks of 624 and compared as integers, and the
// generator's state advances exactly as uniform_ would advance it.
Tensor uniform_keep(std::vector<int64_t> shape, double keep, std::optional<at::Generator> generator) {
  Tensor out = pooled_empty(shape, at::TensorOptions().dtype(at::kFloat));  // a step's new mask, not faulted in
  const float k32 = static_cast<float>(keep);  // lt_'s scalar in the tensor's dtype
  TORCH_CHECK(k32 >= 0.0f && k32 <= 1.0f, "uniform_keep: keep in [0, 1] expected, got ", keep);
  // u = j * 2^-24 < k32 exactly when j < k32 * 2^24 (exact): j < ceil(k32 * 2^24)
  const uint32_t bound = static_cast<uint32_t>(std::ceil(static_cast<double>(k32) * 16777216.0));
  auto* gen = at::get_generator_or_default<at::CPUGeneratorImpl>(generator, at::detail::getDefaultCPUGenerator());
  std::lock_guard<std::mutex> lock(gen->mutex_);
  at::mt19937 engine = gen->engine();
  at::mt19937_data_pod d = engine.data();
  float* o = ptr<float>(out);
  const int64_t n = out.numel();
  // at::mt19937 regenerates on the call that takes left_ to 0, then reads word 0: left_ - 1 words remain before it
  for (int64_t i = 0; i < n;) {
    if (d.left_ <= 1) {
      mt_next_state(d.state_.data());
      d.left_ = kMtN + 1;
      d.next_ = 0;
    }
    const int64_t take = std::min<int64_t>(n - i, d.left_ - 1);
    mt_keep(d.state_.data() + d.next_, take, bound, o + i);
    d.next_ += static_cast<uint32_t>(take);
    d.left_ -= static_cast<int>(take);
    i += take;
  }
  engine.set_data(d);
  gen->set_engine(engine);
  return out;
}


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
  Tensor out = pooled_empty(shape, at::TensorOptions().dtype(dtype));
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
