// Shared by the fused CPU kernels (csrc/*.cpp): element-wise helpers, the parallel loops, the recurrences'
// step slots, the hash of the keep-masks, and the entry points that module.cpp binds.
#pragma once

// ATen alone: torch/extension.h (pybind11, torch's autograd and nn front ends) made each file take three times as long
// to compile (34 against 11 s for gru.cpp); module.cpp, which binds the functions, includes it.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>
#include <vector>

using at::Tensor;
namespace embdrop {

constexpr int64_t kGrain = 1 << 14;  // element-wise passes below this size run on the calling thread

// exp for float in plain arithmetic so that the compiler vectorises the loops that call it (Cephes expf:
// Cody-Waite reduction by ln 2, a degree-6 polynomial, the exponent set by bit manipulation; about 2 ulp).
inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln 2)
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

template <typename T>
inline T sigm(T x) { return T(1) / (T(1) + std::exp(-x)); }
template <>
inline float sigm<float>(float x) { return 1.0f / (1.0f + exp_approx(-x)); }
template <typename T>
inline T tanh_(T x) { return std::tanh(x); }
template <>
inline float tanh_<float>(float x) { return 1.0f - 2.0f / (1.0f + exp_approx(2.0f * x)); }

template <typename scalar_t>
inline scalar_t* ptr(const Tensor& t) { return t.data_ptr<scalar_t>(); }

// Element-wise passes are functions over [s, e) with __restrict__ pointer arguments, called from parallel_for:
// written inside a lambda that captures pointers by reference, the compiler loses the no-alias facts and does not
// vectorise them.
template <typename F>
inline void for_range(int64_t n, const F& f) {
  at::parallel_for(0, n, kGrain, [&](int64_t s, int64_t e) { f(s, e); });
}

// The next step's GEMM inputs h(t) * m_k for one row [s, e), written right after the row's h(t), still in cache.
// A loop of its own: inside the row's main loop, its condition would keep that loop from vectorising.
template <typename scalar_t, int G>
inline void masked_row(int64_t s, int64_t e, int64_t BH, int64_t hm_gate, const scalar_t* __restrict__ h,
                       const scalar_t* __restrict__ rp, scalar_t* __restrict__ hmn) {
  for (int k = 0; k < G; ++k)
    for (int64_t j = s; j < e; ++j) hmn[k * hm_gate + j] = h[j] * rp[k * BH + j];
}

// Rows of B in parallel when a step is big enough to be worth it (a step's passes are a few dozen flops per entry,
// so a smaller grain than the plain element-wise passes').
constexpr int64_t kRowGrain = 1 << 12;
template <typename F>
inline void for_rows(int64_t B, int64_t H, const F& f) {
  const int64_t grain = std::max<int64_t>(1, kRowGrain / std::max<int64_t>(H, 1));  // H = 0: any grain
  at::parallel_for(0, B, grain, [&](int64_t s, int64_t e) { f(s, e); });
}

// How many row blocks a recurrence splits B into, one per thread, each running all T steps on its own (no
// synchronisation per step); 1 keeps one block whose per-step product and passes are parallel inside.
// set_row_blocks (benchmarks/recurrent_blocks.py) forces a count; 0 restores the rule below.
inline std::atomic<int64_t>& forced_row_blocks() {
  static std::atomic<int64_t> n{0};
  return n;
}
inline void set_row_blocks(int64_t n) { forced_row_blocks() = std::max<int64_t>(0, n); }

inline int64_t row_blocks(int64_t B, int64_t H) {
  if (const int64_t forced = forced_row_blocks()) return std::max<int64_t>(1, std::min(B, forced));
  const int64_t n = at::get_num_threads();
  return n > 1 && B >= 2 * n ? n : 1;
}

// A step's pass over a block's rows [b0, b0 + nb): parallel inside when the block is the whole batch (one block).
template <typename F>
inline void block_rows(bool inner_parallel, int64_t b0, int64_t nb, int64_t H, const F& f) {
  if (inner_parallel)
    for_rows(nb, H, [&](int64_t s0, int64_t e0) { f(b0 + s0, b0 + e0); });
  else
    f(b0, b0 + nb);
}

template <typename F>
inline void for_row_blocks(int64_t B, int64_t H, const F& run) {
  const int64_t n = row_blocks(B, H);
  if (n <= 1) {
    run(0, B, true);
    return;
  }
  // the calling thread's dispatch state (autograd off inside the op, autocast) holds in the workers too, whose ATen
  // calls would otherwise see the caller's tensors that require grad
  const at::ThreadLocalState state;
  at::parallel_for(0, n, 1, [&](int64_t c0, int64_t c1) {
    at::ThreadLocalStateGuard guard(state);
    for (int64_t c = c0; c < c1; ++c) run(c * B / n, (c + 1) * B / n, false);
  });
}

// Where step t reads and writes: with the backward's tensors kept (training), step t's slot of the saved tensors
// and state t of the (T + 1) states; without (inference), one slot that every step reuses and two states in turn,
// so that memory does not grow with T.
//
// The masked copies h(t) * m_k that the next step's product reads: in training, gate k of step t at
// hm + k * hm_steps * BH + t * BH (the layout the weight gradient's GEMM reads); in inference, one step, and each
// row block's gates side by side, (G, nb, H) contiguous, so that its product reads them in place (oneDNN's matmul
// copies any other layout first, 15-20 us a step at (G, nb, H) = (4, 10..64, 200..650)). For the block of rows
// starting at entry poff (of B * H) and PBH entries long, entry (k, j) of step t is at
// hm_at(hm, poff) + k * hm_gate(BH, PBH) + saved(t) * BH + j.
// (Whether the backward's tensors are kept is given, not read from the shapes: with T = 1 both keep one step.)
struct Slots {
  bool save;
  int64_t hm_steps, G;
  Slots(bool save_, int64_t T, int64_t G_) : save(save_), hm_steps(save_ ? T : 1), G(G_) {}
  int64_t saved(int64_t t) const { return save ? t : 0; }
  int64_t state(int64_t t) const { return save ? t : t % 2; }
  int64_t hm_gate(int64_t BH, int64_t PBH) const { return save ? hm_steps * BH : PBH; }
  template <typename scalar_t>
  scalar_t* hm_at(scalar_t* hm, int64_t poff) const { return save ? hm : hm + (G - 1) * poff; }
};

// The input projection's bias (G * H,) or an empty tensor (none, read as zeros) as a (G, nb, H) tile, gate k's bias
// repeated over a row block's nb rows, so that a pass over the block's entries reads it at the entry's place.
inline Tensor bias_tile(const Tensor& b, int64_t G, int64_t nb, int64_t H, const at::TensorOptions& opts) {
  if (!b.numel()) return at::zeros({G, nb, H}, opts);
  return b.view({G, 1, H}).expand({G, nb, H}).contiguous();
}

// Whether every entry of a (contiguous) mask is 1: read until the first other entry, so that a dropout mask answers
// at once (at::all(m.eq(1)) wrote and read the whole mask, 0.1 ms a call at (4, 64, 200)).
inline bool all_ones(const Tensor& m) {
  bool ones = true;
  AT_DISPATCH_FLOATING_TYPES(m.scalar_type(), "embdrop_all_ones", [&] {
    const scalar_t* p = ptr<scalar_t>(m);
    ones = std::all_of(p, p + m.numel(), [](scalar_t v) { return v == scalar_t(1); });
  });
  return ones;
}

// Zoneout factors of step t from a (T, B, H) or (1, B, H) tensor (eval: one expectation for every step); null
// when the tensor is undefined (no zoneout).
template <typename scalar_t>
inline const scalar_t* zone_at(const Tensor& z, int64_t t, int64_t BH) {
  if (!z.defined()) return nullptr;
  return z.data_ptr<scalar_t>() + (z.size(0) == 1 ? 0 : t * BH);
}

// dh(0) after the loop: add the recurrent part of the first step, for entries [s, e) of (B, H); dm holds entries
// [poff, poff + PBH) of each gate (one row block's).
template <typename scalar_t>
__attribute__((noinline)) void final_dh_range(int64_t s, int64_t e, int64_t BH, int64_t PBH, int64_t poff, int64_t G,
                                              const scalar_t* __restrict__ dm, const scalar_t* __restrict__ rp,
                                              scalar_t* __restrict__ dh) {
  for (int64_t j = s; j < e; ++j) {
    scalar_t acc = dh[j];
    for (int64_t k = 0; k < G; ++k) acc += dm[k * PBH + j - poff] * rp[k * BH + j];
    dh[j] = acc;
  }
}


// embdrop.functional.masks.bernoulli_keep_hashed on CPU: entry i is kept when hash(i) < threshold, with
// hash(i) = mix(mix(i ^ s0) + s1) and mix Wellons' lowbias32; the Python fallback computes the same bits.
inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// oneDNN's cost per call (primitive lookup, its threading) loses below about this many multiply-adds per call
// (gemm.cpp: smaller products go to MKL's batched GEMM).
constexpr int64_t kOneDnnMacs = int64_t(3) << 20;

// Whether a step's G products (nb, H) x (H, H) of one shared operand, h(t-1) itself (an all-ones recurrent mask in
// inference), run as one call: on MKL's batched GEMM, below oneDNN's size. Above it each product of a shared operand
// is a call of its own (bmm_into), and writing h(t-1) G times into the masked copies' buffer for one batched product
// is faster (an LSTM at (B, H) = (64, 200): 5.6 against 8.5 ms for 35 steps).
inline bool one_call_when_shared(int64_t G, int64_t nb, int64_t H) { return G * nb * H * H < kOneDnnMacs; }

// Where a row's output of step t goes in a (T, B, H) array, as an offset from step t's place: pre-padded rows of
// a layer (moved to the front for the steps, functional/recurrent.py) are written back rotated right by s[b], so no
// roll of the output follows (one gather of (T, B, H) forward, one scatter back); s null: in place.
struct OutShift {
  const int64_t* s = nullptr;
  int64_t t = 0, T = 1, BH = 0;
  int64_t at(int64_t b) const { return s ? (((t + s[b]) % T) - t) * BH : 0; }
};
inline const int64_t* shifts(const Tensor& oshift) {
  return oshift.numel() ? oshift.data_ptr<int64_t>() : nullptr;
}

// Batched products (gemm.cpp): out = a @ b for (G, M, K) and (G, K, N), through oneDNN where it is faster.
void bmm_into(Tensor& out, const Tensor& a, const Tensor& b);
// A recurrence's step in float32: out (G, M, N) = A_g @ B_g for each gate g, A_g the M rows of K values at
// a + g * a_gate (rows K apart), B_g the (K, N) matrix at b + g * K * N; out, A's rows and B contiguous.
// With bp, B_g's copy padded to whole vectors (pad_columns; rows ldb apart): the kernel's own products where they
// sum as the library's would (own_products, products.cpp).
void gate_products(float* out, const float* a, int64_t a_gate, const float* b, int64_t G, int64_t M, int64_t K,
                   int64_t N, const float* bp = nullptr, int64_t ldb = 0);
bool onednn_gemm_available();
bool mkl_batch_available();
// products.cpp: whether the kernel's own products of (G, M, K) x (G, K, N) sum as the library call gate_products
// would make; (G, K, N) float32 with its rows padded with zeros to whole vectors; the products themselves.
bool own_products(int64_t G, int64_t M, int64_t K, int64_t N);
// Whether `same` came out true for `key`, computed once per key and process (the library's and the own sums of one
// shape compared to the bit; false past 256 keys of one check): key = (which check, sizes..., threads, in a parallel region).
using CheckKey = std::array<int64_t, 7>;
bool checked_once(const CheckKey& key, const std::function<bool()>& same);
// Deterministic values in [-1, 1) for those checks, from a linear congruential sequence (torch's generator untouched).
void fill_check_values(Tensor& t, uint32_t state);
// How many sets of values a check compares for a product of `entries` outputs: at least 2^16 entries in all (up to
// 64 sets), since a few entries of two different sums can come out equal by chance.
inline int check_trials(int64_t entries) {
  return static_cast<int>(std::clamp<int64_t>((int64_t(1) << 16) / std::max<int64_t>(entries, 1), 1, 64));
}
bool own_product_sizes(int64_t G, int64_t M, int64_t K, int64_t N);  // the same, wherever the call is made
// Turns the own products off (the library for every step) or on again (the default): benchmarks/step_products.py
// measures both in one process.
void set_own_products(bool enabled);
Tensor pad_columns(const Tensor& w);
void own_gate_products(float* out, const float* a, int64_t a_gate, const float* bp, int64_t ldb, int64_t G,
                       int64_t M, int64_t K, int64_t N);
// A recurrence's right-hand operand padded for own_gate_products when its products may run there (float32, the
// sizes of own_products for some block of rows), else an undefined tensor.
inline Tensor padded_for_steps(const Tensor& w, int64_t G, int64_t B, int64_t H) {
  const int64_t n = row_blocks(B, H);  // blocks of B / n rows, rounded down or up
  const bool some = w.scalar_type() == at::kFloat &&
                    (own_product_sizes(G, B / n, H, H) || own_product_sizes(G, (B + n - 1) / n, H, H));
  return some ? pad_columns(w.view({G, H, H})) : Tensor();
}
// (G, H_in, H_out) contiguous from w_hh (G * H_out, H_in): the recurrences' per-step right-hand operand.
Tensor gates_transposed(const Tensor& w, int64_t G, int64_t H);

// The CPU's float vector for the kernels' own products (GCC vector extensions, built with -march=native): 16 lanes
// with AVX-512, else 8. load_v reads one from unaligned memory.
#if defined(__AVX512F__)
constexpr int kLanes = 16;
#else
constexpr int kLanes = 8;
#endif
typedef float vfloat __attribute__((vector_size(kLanes * sizeof(float))));
inline vfloat load_v(const float* p) {
  vfloat v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
// acc + a * b in every lane as one fused multiply-add, as the libraries' GEMMs sum. Written out: GCC contracts
// `acc += a * b` only where it chooses, and a one-row, one-vector tile built for AVX2 got a multiply and an add,
// whose sums differ from the library's (the products' checks then kept the library everywhere on such a CPU).
inline vfloat fma_v(float a, vfloat b, vfloat acc) {
#if defined(__AVX512F__)
  return _mm512_fmadd_ps(_mm512_set1_ps(a), b, acc);
#elif defined(__FMA__)
  return _mm256_fmadd_ps(_mm256_set1_ps(a), b, acc);
#else
  return acc + a * b;
#endif
}

// dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols (both at most 16): a block of a transposition. With
// AVX-512 one 16 x 16 transpose in registers (missing rows and columns read as zeros, only the block's own written);
// else a loop.
inline void transpose_block(const float* __restrict__ src, int64_t lds, int64_t rows, int64_t cols,
                            float* __restrict__ dst, int64_t ldd) {
#if defined(__AVX512F__)
  const __mmask16 in = static_cast<__mmask16>((1u << cols) - 1), out = static_cast<__mmask16>((1u << rows) - 1);
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = i < rows ? _mm512_maskz_loadu_ps(in, src + i * lds) : _mm512_setzero_ps();
  for (int i = 0; i < 8; ++i) {  // interleave 32-bit entries of row pairs, then 64-bit pairs, then 128-bit lanes twice
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j) {
      t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + j + 4], 0x88);
      t[8 * i + j + 4] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + j + 4], 0xdd);
    }
  for (int j = 0; j < 8; ++j) {
    r[j] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88);
    r[j + 8] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0xdd);
  }
  for (int j = 0; j < cols; ++j) _mm512_mask_storeu_ps(dst + j * ldd, out, r[j]);
#else
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) dst[j * ldd + i] = src[i * lds + j];
#endif
}

// True when every entry is finite. Products that skip zeros (dropped channels, dropped units) check their operands
// first: a dropped inf or nan makes torch's product nan (x * 0), which skipping it would not.
inline bool all_finite(int64_t n, const float* __restrict__ x) {
  const uint32_t* u = reinterpret_cast<const uint32_t*>(x);
  uint32_t bad = 0;  // an OR of integer flags vectorises (a float sum would be one chain of dependent adds)
  for (int64_t i = 0; i < n; ++i) bad |= (u[i] & 0x7f800000u) == 0x7f800000u;  // exponent all ones: inf or nan
  return bad == 0;
}

// One sequence's kept units per gate, for its per-step products in inference (a row block of one row): gate g's at
// idx[start[g]] .. idx[start[g + 1] - 1]. Empty when recurrent dropout keeps most units: the dense product is then
// as fast (gemm.cpp).
struct KeptUnits {
  std::vector<int32_t> idx;
  std::vector<int64_t> start;
  bool empty() const { return start.empty(); }
};
// From the row's recurrent mask, gate g's H entries at rm + g * gate_stride.
KeptUnits kept_units(const float* rm, int64_t gate_stride, int64_t G, int64_t H);
// out (G, 1, N) = a_g (1, K) @ w_g (K, N) for each gate, a_g at a + g * a_gate, read only at the kept units (zero at
// the others: a is h(t-1) times the mask): (1 - p) of W_hh's rows read a step.
void kept_unit_products(float* out, const float* a, int64_t a_gate, const float* w, int64_t G, int64_t K, int64_t N,
                        const KeptUnits& ku);

// A new tensor for a large buffer, its memory reused from buffers the kernels allocated before (pool.cpp).
Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& opts);
// t itself when contiguous, else a contiguous copy in pooled memory: a transposed (B, T, H) mask made time-major
// each step without faulting in a new buffer (a zoneout training step at (64, 35, 200, 200) took 1,200 page faults).
Tensor pooled_contiguous(Tensor t);

// Whether a recurrence's steps may multiply over the kept units only: in inference (no backward), one sequence (a
// row block of one row; larger blocks read W_hh once for all their rows, as the dense product does), float32, and
// finite inputs and weights (see all_finite).
inline bool kept_unit_steps(const Tensor& xw, const Tensor& w_hh, bool save) {
  return !save && xw.size(2) == 1 && xw.scalar_type() == at::kFloat && w_hh.scalar_type() == at::kFloat &&
         xw.is_contiguous() && w_hh.is_contiguous() && all_finite(xw.numel(), xw.data_ptr<float>()) &&
         all_finite(w_hh.numel(), w_hh.data_ptr<float>());
}

// One step's gate products for a block of nb rows: out (G, nb, H) = A_g @ w_g, A_g the nb rows of H values at
// a + g * a_gate. float32 goes to gate_products (no ATen call per step); float64, and bfloat16/float16 weights
// (autocast: the operands rounded into out_lp first), through a view and bmm_into.
// ku: the row's kept units when nb = 1 in inference (kept_units), or nullptr.
// wp: w padded by padded_for_steps (or undefined).
template <typename scalar_t>
void step_products(Tensor& out, Tensor& out_lp, const scalar_t* a, int64_t a_gate, const Tensor& w, int64_t G,
                   int64_t nb, int64_t H, const KeptUnits* ku = nullptr, const Tensor& wp = Tensor()) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (w.scalar_type() == at::kFloat) {
      const float* bp = wp.defined() ? wp.data_ptr<float>() : nullptr;
      if (ku && !ku->empty() && nb == 1)
        kept_unit_products(out.data_ptr<float>(), a, a_gate, w.data_ptr<float>(), G, H, H, *ku);
      else
        gate_products(out.data_ptr<float>(), a, a_gate, w.data_ptr<float>(), G, nb, H, H, bp,
                      wp.defined() ? wp.size(2) : 0);
      return;
    }
  }
  const Tensor av = at::from_blob(const_cast<scalar_t*>(a), {G, nb, H}, {a_gate, H, 1}, out.options());
  if (out_lp.defined()) {
    bmm_into(out_lp, av.to(w.scalar_type()), w);
    out.copy_(out_lp);
  } else {
    bmm_into(out, av, w);
  }
}

// Entry points (bound in module.cpp).
int64_t pool_held_bytes();
void set_pool_cap_mb(int64_t mb);
Tensor batched_product(Tensor a, Tensor b);
Tensor gate_inputs(Tensor x, Tensor m, double scale);
Tensor gate_inputs_backward(Tensor d, Tensor m, double scale);
Tensor masked_projection(Tensor x, Tensor m, double scale, Tensor w);
// Whether masked_projection's sums equal the dense product's (gate_inputs, then bmm_into) to the bit for
// (G, M, K) x (G, K, N), checked once per shape and threading on this CPU (a training step may then skip the
// dropped channels and keep its numbers).
bool masked_projection_exact(int64_t G, int64_t M, int64_t K, int64_t N);
// Turns that off (training's input projection and its input gradient always dense) or on again (the default), for
// benchmarks/recurrent.py; masked_products_enabled reads it.
void set_masked_products(bool enabled);
bool masked_products_enabled();
// input_grad.cpp: the input's gradient (B, T, C) through gate_inputs and the per-gate projection, g (G, T * B, H),
// w (G * H, C), m (G, B, C), without the dropped channels' products; undefined where g or w is not finite.
Tensor masked_input_grad(Tensor g, Tensor w, Tensor m, double scale, int64_t T);
// Whether its values equal the dense path's (bmm_into, then gate_inputs_backward) for (G, M, H) x (G, H, C) on this
// CPU, checked once per shape and threading.
bool masked_input_grad_exact(int64_t G, int64_t M, int64_t H, int64_t C);
// oshift: (B,) int64 rotations of the output along T (OutShift), or an empty tensor for none.
std::vector<Tensor> lstm_forward(Tensor xw, Tensor w_hh, Tensor rmask, Tensor h0, Tensor c0, Tensor step, Tensor zh,
                                 Tensor zc, bool save, Tensor b_in, Tensor oshift);
std::vector<Tensor> lstm_backward(Tensor dout, Tensor dhT, Tensor dcT, Tensor w_hh, Tensor rmask, Tensor cs,
                                  Tensor hm, Tensor gates, Tensor tcs, Tensor step, Tensor zh, Tensor zc,
                                  Tensor oshift);
std::vector<Tensor> gru_forward(Tensor xw, Tensor w_hh, Tensor b_hh, Tensor rmask, Tensor h0, Tensor step, Tensor zh,
                                bool save, Tensor b_in, Tensor oshift);
std::vector<Tensor> gru_backward(Tensor dout, Tensor dhT, Tensor w_hh, Tensor rmask, Tensor hs, Tensor hm,
                                 Tensor gates, Tensor hpn, Tensor step, Tensor zh, Tensor oshift);
Tensor keep_mask(std::vector<int64_t> shape, int64_t threshold, int64_t seed, at::ScalarType dtype);
Tensor uniform_keep(std::vector<int64_t> shape, double keep, std::optional<at::Generator> generator);
Tensor hashed_scale(Tensor x, int64_t threshold, int64_t seed, double value);
Tensor word_keep(Tensor ids, int64_t T, int64_t V, int64_t threshold, int64_t seed, int64_t padding_idx,
                 double value, at::ScalarType dtype);
Tensor embedding_scaled(Tensor weight, Tensor ids, Tensor scale);
Tensor embedding_scaled_backward(Tensor grad, Tensor ids, Tensor scale, int64_t V, int64_t padding_idx, bool sparse);
Tensor embedding_hashed(Tensor weight, Tensor ids, std::vector<int64_t> key, double value);
Tensor embedding_hashed_backward(Tensor grad, Tensor ids, std::vector<int64_t> key, double value, int64_t V,
                                 bool sparse);

}  // namespace embdrop
