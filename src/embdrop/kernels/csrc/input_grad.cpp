// The input's gradient through a per-gate masked input projection, without the dropped channels' products.
//
// Forward, gate k projects x * m_k * s (gate_inputs.cpp). Backward, the dense path takes each gate's (T*B, H) x (H, C)
// product of the gates' gradient with W_k, then sums the G products times their masks into dx (gate_inputs_backward):
// dx[b, t, c] = sum_k (g_k[t, b] . W_k[:, c]) * (m_k[b, c] * s). A channel dropped for sequence b in gate k is
// multiplied by zero, so its product is never needed: for one sequence and gate only the kept channels' columns of
// W_k enter, (1 - p) of the flops, and the mask's sum is made as each product comes out (no (G, T, B, C) tensor).
//
// Each entry is summed as the library sums it: a chain of fused multiply-adds over h in order, in blocks of 512
// (oneDNN's K blocks, each its own chain, added to the ones before), then times m_k * s and added to the gates
// before it in gate order, a multiply and an add as gate_inputs_backward makes them. masked_input_grad_exact checks
// that once per shape and threading against the dense path on this CPU; the layer takes this path only where it
// holds. Vectors run over a sequence's steps (the kept channels differ per sequence and are scattered, the steps
// are not): one sequence's gradient is laid out (H, T) for it, padded to whole vectors.
#include "common.h"

namespace embdrop {

namespace {

constexpr int kNT = kLanes == 16 ? 3 : 2;  // vectors of steps a tile: 3 x 8 accumulators in AVX-512's 32 registers
constexpr int kNC = kLanes == 16 ? 8 : 6;  // kept channels a tile: 2 x 6 of AVX2's 16
constexpr int64_t kHBlock = 512;           // oneDNN's K block (gate_inputs.cpp)

// For nt vectors of steps (dt: rows of the (H, Tp) gradient, ld apart) and nc kept channels (rows idx[j] of W_k^T,
// (C, H)): v = sum_h dt[h] * w[idx[j], h] per block of h, then acc[idx[j]] += v * ms[j] (acc (C, Tp), rows ld apart).
template <int nt, int nc>
__attribute__((noinline)) void tile(int64_t H, const float* __restrict__ dt, int64_t ld, const float* __restrict__ wt,
                                    const int32_t* __restrict__ idx, const float* __restrict__ ms,
                                    float* __restrict__ acc) {
  const float* wr[nc];
  for (int j = 0; j < nc; ++j) wr[j] = wt + int64_t(idx[j]) * H;
  vfloat tot[nt][nc];
  for (int64_t h0 = 0; h0 < H; h0 += kHBlock) {
    vfloat a[nt][nc];
#pragma GCC unroll 8
    for (int j = 0; j < nc; ++j)
#pragma GCC unroll 3
      for (int i = 0; i < nt; ++i) a[i][j] = vfloat{};
    const int64_t h1 = std::min(H, h0 + kHBlock);
    for (int64_t h = h0; h < h1; ++h) {
      vfloat d[nt];
#pragma GCC unroll 3
      for (int i = 0; i < nt; ++i) d[i] = load_v(dt + h * ld + i * kLanes);
#pragma GCC unroll 8
      for (int j = 0; j < nc; ++j) {
        const float wj = wr[j][h];
#pragma GCC unroll 3
        for (int i = 0; i < nt; ++i) a[i][j] = fma_v(wj, d[i], a[i][j]);
      }
    }
    for (int j = 0; j < nc; ++j)
      for (int i = 0; i < nt; ++i) tot[i][j] = h0 == 0 ? a[i][j] : tot[i][j] + a[i][j];
  }
  for (int j = 0; j < nc; ++j) {
    float* out = acc + int64_t(idx[j]) * ld;
    for (int i = 0; i < nt; ++i) {
      vfloat prod = tot[i][j] * ms[j];
      asm("" : "+v"(prod));  // a multiply, then an add, as gate_inputs_backward's sum: never contracted into an FMA
      const vfloat sum = load_v(out + i * kLanes) + prod;
      __builtin_memcpy(out + i * kLanes, &sum, sizeof sum);
    }
  }
}

// tile for 1 <= nc <= kNC channels (a gate's last block of kept channels may be short)
template <int nt, int C = kNC>
void tile_cols(int nc, int64_t H, const float* dt, int64_t ld, const float* wt, const int32_t* idx, const float* ms,
               float* acc) {
  if constexpr (C >= 1) {
    if (nc == C) return tile<nt, C>(H, dt, ld, wt, idx, ms, acc);
    tile_cols<nt, C - 1>(nc, H, dt, ld, wt, idx, ms, acc);
  }
}

template <int N = kNT>
void tile_rows(int nt, int nc, int64_t H, const float* dt, int64_t ld, const float* wt, const int32_t* idx,
               const float* ms, float* acc) {
  if constexpr (N >= 1) {
    if (nt == N) return tile_cols<N>(nc, H, dt, ld, wt, idx, ms, acc);
    tile_rows<N - 1>(nt, nc, H, dt, ld, wt, idx, ms, acc);
  }
}

}  // namespace

Tensor masked_input_grad(Tensor g, Tensor w, Tensor m, double scale, int64_t T) {
  TORCH_CHECK(g.dim() == 3 && m.dim() == 3 && w.dim() == 2 && g.scalar_type() == at::kFloat &&
                  w.scalar_type() == at::kFloat && m.scalar_type() == at::kFloat,
              "embdrop masked_input_grad: expected float32 g (G, T * B, H), w (G * H, C), m (G, B, C)");
  const int64_t G = m.size(0), B = m.size(1), C = m.size(2), H = g.size(2);
  TORCH_CHECK(T >= 1 && g.size(0) == G && g.size(1) == T * B && w.size(0) == G * H && w.size(1) == C,
              "embdrop masked_input_grad: g ", g.sizes(), ", w ", w.sizes(), " and m ", m.sizes(),
              " do not fit T = ", T);
  TORCH_CHECK(C < (int64_t(1) << 31), "embdrop masked_input_grad: C must be below 2^31, got ", C);
  const Tensor gc = g.contiguous(), wc = w.contiguous(), mc = m.contiguous();
  // a dropped channel's inf or nan makes the dense sum nan, which skipping it would not: the dense path then
  if (!all_finite(wc.numel(), ptr<float>(wc))) return Tensor();
  // W_k^T, (G, C, H): a kept channel's H weights in a row, read in order by the tiles
  Tensor wt = pooled_empty({G, C, H}, wc.options());
  {
    const float* src = ptr<float>(wc);
    float* dst = ptr<float>(wt);
    const int64_t hb = (H + 15) / 16, cb = (C + 15) / 16;
    at::parallel_for(0, G * hb, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {  // 16 rows k * H + h0 ... of w, in blocks of 16 x 16
        const int64_t k = r / hb, h0 = (r % hb) * 16;
        for (int64_t c0 = 0; c0 < cb * 16; c0 += 16)
          transpose_block(src + (k * H + h0) * C + c0, C, std::min<int64_t>(16, H - h0), std::min<int64_t>(16, C - c0),
                          dst + (k * C + c0) * H + h0, H);
      }
    });
  }
  Tensor dx = at::empty({B, T, C}, gc.options());
  const int64_t Tp = (T + kLanes - 1) / kLanes * kLanes, vecs = Tp / kLanes;
  const float* gp = ptr<float>(gc);
  const float* mp = ptr<float>(mc);
  const float* wp = ptr<float>(wt);
  float* op = ptr<float>(dx);
  const float s = static_cast<float>(scale);
  std::atomic<bool> finite{true};
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> dt(H * Tp, 0.0f), acc(C * Tp);  // steps past T stay zero in dt, are never stored from acc
    std::vector<int32_t> idx(C);
    std::vector<float> ms(C);
    uint32_t bad = 0;
    for (int64_t b = b0; b < b1; ++b) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t k = 0; k < G; ++k) {
        // (G, T, B, H): sequence b's rows of gate k (B * H apart), turned (H, Tp) in blocks of 16 x 16
        const float* rows = gp + (k * T * B + b) * H;
        for (int64_t t = 0; t < T; ++t) bad |= !all_finite(H, rows + t * B * H);
        for (int64_t t0 = 0; t0 < T; t0 += 16)
          for (int64_t h0 = 0; h0 < H; h0 += 16)
            transpose_block(rows + t0 * B * H + h0, B * H, std::min<int64_t>(16, T - t0),
                            std::min<int64_t>(16, H - h0), dt.data() + h0 * Tp + t0, Tp);
        const float* mr = mp + (k * B + b) * C;
        int32_t K = 0;
        for (int64_t c = 0; c < C; ++c)
          if (mr[c] != 0.0f) {
            idx[K] = static_cast<int32_t>(c);
            ms[K++] = mr[c] * s;
          }
        const float* wk = wp + k * C * H;
        for (int64_t v0 = 0; v0 < vecs; v0 += kNT) {
          const int nt = static_cast<int>(std::min<int64_t>(kNT, vecs - v0));
          for (int32_t j0 = 0; j0 < K; j0 += kNC) {
            const int nc = std::min(kNC, K - j0);
            tile_rows(nt, nc, H, dt.data() + v0 * kLanes, Tp, wk, idx.data() + j0, ms.data() + j0,
                      acc.data() + v0 * kLanes);
          }
        }
      }
      float* out = op + b * T * C;
      for (int64_t c0 = 0; c0 < C; c0 += 16)
        for (int64_t t0 = 0; t0 < T; t0 += 16)
          transpose_block(acc.data() + c0 * Tp + t0, Tp, std::min<int64_t>(16, C - c0), std::min<int64_t>(16, T - t0),
                          out + t0 * C + c0, C);
    }
    if (bad) finite = false;
  });
  return finite ? dx : Tensor();
}

bool masked_input_grad_exact(int64_t G, int64_t M, int64_t H, int64_t C) {
  if (!masked_products_enabled() || G < 1 || M < 1 || H < 1 || C < 1) return false;
  if (G * M * (H + C) > (int64_t(1) << 24)) return false;  // the check's own floats, as masked_projection_exact
  const CheckKey key{2, G, M, H, C, at::get_num_threads(), at::in_parallel_region() ? 1 : 0};
  return checked_once(key, [&] {
    // M sequences of one step: the library's sums do not depend on how its rows split into sequences, the own ones
    // on nothing but h's order and the gates' (each entry its own chain)
    const auto opts = at::TensorOptions().dtype(at::kFloat);
    Tensor g = at::empty({G, M, H}, opts), m = at::empty({G, M, C}, opts), w = at::empty({G * H, C}, opts);
    Tensor d = at::empty({G, M, C}, opts);
    for (uint32_t r = 0, n = check_trials(M * C); r < n; ++r) {
      fill_check_values(g, 0x9e3779b9u + r);
      fill_check_values(w, 0x7f4a7c15u + r);
      fill_check_values(m, 0x2545f491u + r);
      m = (m > 0).to(at::kFloat);  // about half the channels dropped
      bmm_into(d, g, w.view({G, H, C}));
      const Tensor lib = gate_inputs_backward(d.view({G, 1, M, C}), m, 2.0);
      const Tensor own = masked_input_grad(g, w, m, 2.0, 1);
      // equal values: a channel every gate drops is +0 here, and +0 or -0 there (a gradient times a zero mask)
      if (!own.defined() || !at::equal(lib, own)) return false;
    }
    return true;
  });
}

}  // namespace embdrop
