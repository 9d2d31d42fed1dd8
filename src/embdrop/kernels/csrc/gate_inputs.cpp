// The input projection's operand with a per-gate input mask: x (B, T, C) turned time-first and multiplied by each
// gate's mask, (G, T, B, C), in one pass (torch's ops took two: a transposed copy, then a broadcast product, and a
// new (G, T, B, C) tensor each call, whose first touch page-faults). Its backward sums the gates' gradients times
// their masks into (B, T, C), again in one pass.
//
// masked_projection: the product itself, (x * m_k * scale) @ W_k^T for each gate k: in MC-dropout predictions, and
// in a training step's forward where its sums are the dense product's to the bit (masked_projection_exact: oneDNN
// sums K in blocks of 512, so this does too). A dropped input channel adds nothing to any product of its sequence:
// for one sequence b and gate k, only the kept channels' columns of x_b (T, C) and rows of W_k^T (C, H) enter, a
// product with (1 - p) of the flops. Written as a register-blocked GEMM of its own (kMR rows x 2 vectors; the kept
// channels' indices pick the rows of a panel of W_k^T as it goes), since no library GEMM skips a different set of rows
// per sequence.
#include "common.h"

namespace embdrop {

namespace {

template <typename scalar_t>
__attribute__((noinline)) void mask_row(int64_t C, const scalar_t* __restrict__ src, const scalar_t* __restrict__ m,
                                        scalar_t s, scalar_t* __restrict__ dst) {
  for (int64_t c = 0; c < C; ++c) dst[c] = src[c] * (m[c] * s);
}

template <typename scalar_t>
__attribute__((noinline)) void sum_row(int64_t G, int64_t C, int64_t gate_d, int64_t gate_m,
                                       const scalar_t* __restrict__ d, const scalar_t* __restrict__ m, scalar_t s,
                                       scalar_t* __restrict__ dst) {
  for (int64_t c = 0; c < C; ++c) {
    scalar_t acc = d[c] * (m[c] * s);
    for (int64_t g = 1; g < G; ++g) acc += d[g * gate_d + c] * (m[g * gate_m + c] * s);
    dst[c] = acc;
  }
}

void check(const Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK(t.device().is_cpu() && t.dim() == dim && t.is_contiguous(), "embdrop gate_inputs: ", name,
              " must be a contiguous ", dim, "-d CPU tensor, got ", t.sizes());
}

// rows a block: 24 accumulators, 2 operand rows and a broadcast in AVX-512's 32 registers; 12 + 2 + 1 of AVX2's 16
constexpr int kMR = kLanes == 16 ? 12 : 6;

// c[i, :ncols] = (or += with `add`) sum_k a[k * kMR + i] * w[idx[k] * ldw + (0 .. NV * kLanes)] for the block's mr
// rows (c's rows ldc apart); a holds the block's rows packed column by column, as the broadcasts read them
template <int mr, int NV>
__attribute__((noinline)) void kept_product(int64_t K, const float* __restrict__ a, const int32_t* __restrict__ idx,
                                            const float* __restrict__ w, int64_t ldw, float* __restrict__ c,
                                            int64_t ldc, int ncols, bool add) {
  vfloat acc[mr][NV];
#pragma GCC unroll 16
  for (int i = 0; i < mr; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = vfloat{};
  for (int64_t k = 0; k < K; ++k) {
    const float* wr = w + int64_t(idx[k]) * ldw;
    vfloat b[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) b[v] = load_v(wr + v * kLanes);
#pragma GCC unroll 16
    for (int i = 0; i < mr; ++i) {
      const float ai = a[k * kMR + i];
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = fma_v(ai, b[v], acc[i][v]);
    }
  }
  for (int i = 0; i < mr; ++i) {
    if (add) {
      float row[NV * kLanes];
      __builtin_memcpy(row, acc[i], sizeof row);
      for (int j = 0; j < ncols; ++j) c[i * ldc + j] += row[j];
    } else if (ncols == NV * kLanes) {
      for (int v = 0; v < NV; ++v) __builtin_memcpy(c + i * ldc + v * kLanes, &acc[i][v], sizeof(vfloat));
    } else {
      float row[NV * kLanes];
      __builtin_memcpy(row, acc[i], sizeof row);
      for (int j = 0; j < ncols; ++j) c[i * ldc + j] = row[j];
    }
  }
}

// kept_product for a block of 1 <= mr <= kMR rows (a sequence's last block may be short)
template <int NV, int R = kMR>
void kept_product_rows(int mr, int64_t K, const float* a, const int32_t* idx, const float* w, int64_t ldw, float* c,
                       int64_t ldc, int ncols, bool add) {
  if constexpr (R >= 1) {
    if (mr == R) return kept_product<R, NV>(K, a, idx, w, ldw, c, ldc, ncols, add);
    kept_product_rows<NV, R - 1>(mr, K, a, idx, w, ldw, c, ldc, ncols, add);
  }
}

// oneDNN's float32 GEMM sums K in blocks of this many, each block a chain of its own added to the ones before
// (products.cpp): the kept channels are summed in the same blocks of channel indices
constexpr int64_t kKBlock = 512;

}  // namespace

Tensor masked_projection(Tensor x, Tensor m, double scale, Tensor w) {
  check(x, "x", 3);
  check(m, "m", 3);
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), G = m.size(0);
  TORCH_CHECK(x.scalar_type() == at::kFloat && m.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat,
              "embdrop masked_projection: expected float32 x, m and w");
  TORCH_CHECK(G > 0 && m.size(1) == B && m.size(2) == C && w.dim() == 2 && w.size(1) == C && w.size(0) % G == 0,
              "embdrop masked_projection: m must be (G, B, C) and w (G * H, C) for x ", x.sizes(), ", got ",
              m.sizes(), " and ", w.sizes());
  TORCH_CHECK(C < (int64_t(1) << 31), "embdrop masked_projection: C must be below 2^31, got ", C);
  const int64_t H = w.size(0) / G;
  const Tensor wc = w.contiguous();
  Tensor out = pooled_empty({G, T, B, H}, x.options());
  if (!all_finite(x.numel(), ptr<float>(x)) || !all_finite(wc.numel(), ptr<float>(wc))) {
    Tensor ov = out.view({G, T * B, H});
    bmm_into(ov, gate_inputs(x, m, scale).view({G, T * B, C}), wc.view({G, H, C}).transpose(1, 2));
    return out;
  }
  // W_k^T in panels of NR columns, (G, P, C, NR), the last panel's columns past H zero: a product reads one panel's
  // kept rows, NR floats each, within C * NR contiguous floats (W_k^T row-major put them H floats apart: a page
  // or more between rows at C, H = 650)
  constexpr int64_t NR = 2 * kLanes;
  const int64_t P = (H + NR - 1) / NR;
  Tensor wt = pooled_empty({G, P, C, NR}, x.options());
  {
    const float* w = ptr<float>(wc);
    float* o = ptr<float>(wt);
    at::parallel_for(0, G * P, 1, [&](int64_t s0, int64_t s1) {
      for (int64_t gp = s0; gp < s1; ++gp) {
        const int64_t g = gp / P, n0 = (gp % P) * NR;
        float* dst = o + gp * C * NR;
        for (int64_t j = 0; j < NR; ++j) {
          const float* src = w + (g * H + n0 + j) * C;  // row n0 + j of W_k
          if (n0 + j < H)
            for (int64_t c = 0; c < C; ++c) dst[c * NR + j] = src[c];
          else
            for (int64_t c = 0; c < C; ++c) dst[c * NR + j] = 0.0f;
        }
      }
    });
  }
  const float* xp = ptr<float>(x);
  const float* mp = ptr<float>(m);
  const float* wp = ptr<float>(wt);
  float* op = ptr<float>(out);
  const float s = static_cast<float>(scale);
  constexpr int64_t TC = 8 * kMR;  // a sequence's rows packed at a time
  // A task: one gate and a group of nb sequences whose packed rows fit kPacked floats (in L2 beside a panel of
  // W_k^T), so that each panel of W_k^T (C rows of NR columns) is read once for the group, not once per sequence.
  constexpr int64_t kPacked = 1 << 16;
  const int64_t nb = std::clamp<int64_t>(kPacked / std::max<int64_t>(1, std::min(T, TC) * C), 1, std::max<int64_t>(B, 1));
  const int64_t groups = (B + nb - 1) / nb;
  at::parallel_for(0, G * groups, 1, [&](int64_t t0, int64_t t1) {
    std::vector<int32_t> idx(nb * C);  // sequence j's kept channels at idx[j * C ...], its count in kept[j]
    std::vector<float> kept_scale(nb * C), packed(nb * (TC + kMR) * C);
    std::vector<int64_t> kept(nb), at_(nb);
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t g = task / groups, b0 = (task % groups) * nb, n = std::min(nb, B - b0);
      for (int64_t j = 0; j < n; ++j) {
        const float* mr = mp + (g * B + b0 + j) * C;
        int64_t K = 0;
        for (int64_t c = 0; c < C; ++c)
          if (mr[c] != 0.0f) {
            idx[j * C + K] = static_cast<int32_t>(c);
            kept_scale[j * C + K++] = mr[c] * s;
          }
        kept[j] = K;
      }
      const float* wg = wp + g * P * C * NR;
      for (int64_t r0 = 0; r0 < T; r0 += TC) {
        const int64_t rows = std::min(TC, T - r0), blocks = (rows + kMR - 1) / kMR;
        int64_t off = 0;
        for (int64_t j = 0; j < n; ++j) {  // each sequence's rows, masked, packed column by column in blocks
          const int64_t K = kept[j];
          const int32_t* ix = idx.data() + j * C;
          const float* ks = kept_scale.data() + j * C;
          at_[j] = off;
          for (int64_t blk = 0; blk < blocks; ++blk) {
            float* a = packed.data() + off + blk * kMR * K;
            for (int64_t i = 0; i < kMR; ++i) {
              const int64_t t = std::min(r0 + blk * kMR + i, T - 1);  // rows past T: any row, never stored
              const float* xr = xp + ((b0 + j) * T + t) * C;
              for (int64_t k = 0; k < K; ++k) a[k * kMR + i] = xr[ix[k]] * ks[k];
            }
          }
          off += blocks * kMR * K;
        }
        for (int64_t n0 = 0; n0 < H; n0 += NR) {
          const int ncols = static_cast<int>(std::min(NR, H - n0));
          for (int64_t j = 0; j < n; ++j)
            for (int64_t blk = 0; blk < blocks; ++blk) {
              const int mrows = static_cast<int>(std::min<int64_t>(kMR, rows - blk * kMR));
              const float* a = packed.data() + at_[j] + blk * kMR * kept[j];
              const int32_t* ix = idx.data() + j * C;
              // (G, T, B, H): rows t of a sequence are B * H apart
              float* c = op + ((g * T + r0 + blk * kMR) * B + b0 + j) * H + n0;
              const float* panel = wg + (n0 / NR) * C * NR;
              for (int64_t k0 = 0, k1 = 0; k0 < kept[j] || k0 == 0; k0 = k1) {  // the kept channels of a K block
                const int64_t end = (ix[k0 < kept[j] ? k0 : 0] / kKBlock + 1) * kKBlock;
                k1 = k0;
                while (k1 < kept[j] && ix[k1] < end) ++k1;
                const float* ak = a + k0 * kMR;
                if (ncols > kLanes)
                  kept_product_rows<2>(mrows, k1 - k0, ak, ix + k0, panel, NR, c, B * H, ncols, k0 > 0);
                else
                  kept_product_rows<1>(mrows, k1 - k0, ak, ix + k0, panel, NR, c, B * H, ncols, k0 > 0);
                if (k1 == k0) break;  // no channel kept: zeros written once
              }
            }
        }
      }
    }
  });
  return out;
}

namespace {
std::atomic<bool> masked_products_on{true};
}  // namespace

void set_masked_products(bool enabled) { masked_products_on = enabled; }
bool masked_products_enabled() { return masked_products_on; }

bool masked_projection_exact(int64_t G, int64_t M, int64_t K, int64_t N) {
  if (!masked_products_on || G < 1 || M < 1 || K < 1 || N < 1) return false;
  // the check holds two (G, M, K) copies and two (G, M, N) products on top of the step's own: past 2^25 floats
  // (128 MiB) the dense product runs, unchecked
  if (G * M * (K + N) > (int64_t(1) << 24)) return false;
  const CheckKey key{1, G, M, K, N, at::get_num_threads(), at::in_parallel_region() ? 1 : 0};
  return checked_once(key, [&] {
    // M sequences of one step: the library's sums do not depend on how the rows split into sequences, the own ones
    // on nothing but the kept channels (a chain over them in order per K block)
    const auto opts = at::TensorOptions().dtype(at::kFloat);
    Tensor x = at::empty({M, 1, K}, opts), m = at::empty({G, M, K}, opts), w = at::empty({G * N, K}, opts);
    Tensor lib = at::empty({G, M, N}, opts);
    for (uint32_t r = 0, n = check_trials(M * N); r < n; ++r) {
      fill_check_values(x, 0x9e3779b9u + r);
      fill_check_values(w, 0x7f4a7c15u + r);
      fill_check_values(m, 0x2545f491u + r);
      m = (m > 0).to(at::kFloat);  // about half the channels dropped
      bmm_into(lib, gate_inputs(x, m, 2.0).view({G, M, K}), w.view({G, N, K}).transpose(1, 2));
      const Tensor own = masked_projection(x, m, 2.0, w);
      if (std::memcmp(lib.data_ptr<float>(), own.data_ptr<float>(), sizeof(float) * G * M * N) != 0) return false;
    }
    return true;
  });
}

Tensor gate_inputs(Tensor x, Tensor m, double scale) {
  check(x, "x", 3);
  check(m, "m", 3);
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), G = m.size(0);
  TORCH_CHECK(m.size(1) == B && m.size(2) == C && m.scalar_type() == x.scalar_type(),
              "embdrop gate_inputs: m must be (G, B, C) = (G, ", B, ", ", C, ") of x's dtype, got ", m.sizes());
  Tensor out = pooled_empty({G, T, B, C}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "embdrop_gate_inputs", [&] {
    const scalar_t* xp = ptr<scalar_t>(x);
    const scalar_t* mp = ptr<scalar_t>(m);
    scalar_t* op = ptr<scalar_t>(out);
    const scalar_t s = static_cast<scalar_t>(scale);
    // rows r = t * B + b of each gate's output, written in order (x's row b * T + t read once per gate, T * C
    // apart from the last: more of a pass's traffic is the G rows written than the one read)
    for_rows(B * T, G * C, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t t = r / B, b = r % B;
        for (int64_t g = 0; g < G; ++g)
          mask_row<scalar_t>(C, xp + (b * T + t) * C, mp + (g * B + b) * C, s, op + (g * T * B + r) * C);
      }
    });
  });
  return out;
}

Tensor gate_inputs_backward(Tensor d, Tensor m, double scale) {
  check(d, "d", 4);
  check(m, "m", 3);
  const int64_t G = d.size(0), T = d.size(1), B = d.size(2), C = d.size(3);
  TORCH_CHECK(m.size(0) == G && m.size(1) == B && m.size(2) == C && m.scalar_type() == d.scalar_type(),
              "embdrop gate_inputs_backward: m must be (G, B, C) = (", G, ", ", B, ", ", C, "), got ", m.sizes());
  Tensor dx = at::empty({B, T, C}, d.options());
  AT_DISPATCH_FLOATING_TYPES(d.scalar_type(), "embdrop_gate_inputs_backward", [&] {
    const scalar_t* dp = ptr<scalar_t>(d);
    const scalar_t* mp = ptr<scalar_t>(m);
    scalar_t* op = ptr<scalar_t>(dx);
    const scalar_t s = static_cast<scalar_t>(scale);
    // rows r = t * B + b of each gate's gradient, read in order (a stride of B * C between the rows read, larger
    // than a page, would keep the hardware from prefetching the G rows)
    for_rows(B * T, G * C, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t t = r / B, b = r % B;
        sum_row<scalar_t>(G, C, T * B * C, B * C, dp + r * C, mp + b * C, s, op + (b * T + t) * C);
      }
    });
  });
  return dx;
}

}  // namespace embdrop
