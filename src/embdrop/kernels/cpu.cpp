// Fused CPU recurrences for embdrop.LSTM / embdrop.GRU with per-gate recurrent dropout masks.
//
// Layouts: xw (G, T, B, H) input projections per gate (biases included, for GRU only b_ih); w_hh (G*H, H);
// rmask (G, B, H), already scaled by 1/(1-p); h0, c0 (B, H); step (T, B) bool, or an empty tensor when no step is
// padded; zoneout zh, zc (T, B, H) update masks (1 takes the new value) or (1, B, H) expectations at eval, or empty
// tensors. LSTM gates are ordered i, f, o, g here; GRU gates r, z, n.
//
// Without the backward's tensors (``save`` false: no gradient needed, e.g. MC-dropout predictions), the forward keeps
// one step of them and two states instead of T, and returns the final state as hs, cs of one step.
//
// One step of the forward is one batched GEMM, (h(t-1) * m_k) @ W_k^T for the G gates, and one fused element-wise
// pass that adds the input part, applies the activations, updates the state and writes h(t) * m_k for the next
// step into a (G, T, B, H) buffer. The backward reuses that buffer: the weight gradient is one batched GEMM over all
// steps, on views. The backward needs no transcendental (activations are saved) and one batched GEMM per step.
//
// Mixed precision: when w_hh comes in a lower precision than xw (bfloat16 under torch.autocast), the per-step
// GEMMs and the weight-gradient GEMM run in w_hh's dtype (their inputs rounded to it, fp32 accumulation inside the
// GEMM), everything else (gates, state, masks, the element-wise passes) stays in xw's dtype. dW is returned in
// w_hh's dtype, as autograd expects for that input.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

using at::Tensor;

namespace {

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

// h * m_k for every gate k, written to the (G, T, B, H) buffer at step t.
template <typename scalar_t>
__attribute__((noinline)) void masked_range(int64_t s, int64_t e, scalar_t* __restrict__ dst, const scalar_t* __restrict__ h,
                  const scalar_t* __restrict__ rk) {
  for (int64_t j = s; j < e; ++j) dst[j] = h[j] * rk[j];
}

template <typename scalar_t>
void write_masked(scalar_t* hm, const scalar_t* h, const scalar_t* r, int64_t G, int64_t t, int64_t T, int64_t BH) {
  for (int64_t k = 0; k < G; ++k) {
    scalar_t* dst = hm + k * T * BH + t * BH;
    const scalar_t* rk = r + k * BH;
    for_range(BH, [&](int64_t s, int64_t e) { masked_range(s, e, dst, h, rk); });
  }
}

// The next step's GEMM inputs h(t) * m_k for one row [s, e), written right after the row's h(t), still in cache.
// A loop of its own: inside the row's main loop, its condition would keep that loop from vectorising.
template <typename scalar_t, int G>
inline void masked_row(int64_t s, int64_t e, int64_t BH, int64_t hm_gate, const scalar_t* __restrict__ h,
                       const scalar_t* __restrict__ rp, scalar_t* __restrict__ hmn) {
  for (int k = 0; k < G; ++k)
    for (int64_t j = s; j < e; ++j) hmn[k * hm_gate + j] = h[j] * rp[k * BH + j];
}

// The passes below run over rows b in [bs, be) (one row = one sequence, H units), so that the padding flag is the
// same for a whole inner loop and every operand is loaded unconditionally: the inner loops then vectorise.
// Zoneout (Z = true): zh, zc are this step's update factors, 1 (take the new value) or 0 (keep the previous one)
// in training, 1 - p at eval (the expectation); the zoned value is z * new + (1 - z) * previous.
template <typename scalar_t, bool Z>
__attribute__((noinline)) void lstm_fwd_rows(int64_t bs, int64_t be, int64_t BH, int64_t TBH, int64_t H,
                                             const scalar_t* __restrict__ pp, const scalar_t* __restrict__ x,
                                             scalar_t* __restrict__ g, const scalar_t* __restrict__ hprev,
                                             const scalar_t* __restrict__ cprev, scalar_t* __restrict__ hnew,
                                             scalar_t* __restrict__ cnew, scalar_t* __restrict__ tc,
                                             scalar_t* __restrict__ o, const bool* __restrict__ vt,
                                             const scalar_t* __restrict__ zh, const scalar_t* __restrict__ zc,
                                             scalar_t* __restrict__ hmn, const scalar_t* __restrict__ rp,
                                             int64_t hm_gate) {
  for (int64_t b = bs; b < be; ++b) {
    // 1 at a real step, 0 at a padded one; a blend by multiplication vectorises where a select of bools does not,
    // and is exact for finite values (x * 1 + y * 0 == x)
    const scalar_t vf = (vt ? vt[b] : true) ? scalar_t(1) : scalar_t(0);
    for (int64_t j = b * H; j < (b + 1) * H; ++j) {
      const scalar_t i = sigm(pp[j] + x[j]);
      const scalar_t f = sigm(pp[BH + j] + x[TBH + j]);
      const scalar_t og = sigm(pp[2 * BH + j] + x[2 * TBH + j]);
      const scalar_t gg = tanh_(pp[3 * BH + j] + x[3 * TBH + j]);
      g[j] = i;
      g[BH + j] = f;
      g[2 * BH + j] = og;
      g[3 * BH + j] = gg;
      const scalar_t cp = cprev[j], hp = hprev[j];
      scalar_t c = f * cp + i * gg;
      const scalar_t th = tanh_(c);
      tc[j] = th;
      scalar_t h = og * th;
      if (Z) {
        c = zc[j] * c + (scalar_t(1) - zc[j]) * cp;
        h = zh[j] * h + (scalar_t(1) - zh[j]) * hp;
      }
      cnew[j] = vf * c + (scalar_t(1) - vf) * cp;
      hnew[j] = vf * h + (scalar_t(1) - vf) * hp;
      o[j] = vf * h;
    }
    if (hmn) masked_row<scalar_t, 4>(b * H, (b + 1) * H, BH, hm_gate, hnew, rp, hmn);
  }
}

template <typename scalar_t, bool Z>
__attribute__((noinline)) void lstm_bwd_rows(int64_t bs, int64_t be, int64_t BH, int64_t TBH, int64_t H,
                                             const scalar_t* __restrict__ g, const scalar_t* __restrict__ tcp,
                                             const scalar_t* __restrict__ cprev, const scalar_t* __restrict__ dop,
                                             const scalar_t* __restrict__ dm, const scalar_t* __restrict__ rp,
                                             scalar_t* __restrict__ dhp, scalar_t* __restrict__ dcp,
                                             scalar_t* __restrict__ dp, const bool* __restrict__ vt,
                                             const scalar_t* __restrict__ zh, const scalar_t* __restrict__ zc) {
  for (int64_t b = bs; b < be; ++b) {
    const scalar_t vf = (vt ? vt[b] : true) ? scalar_t(1) : scalar_t(0);  // 1 at a real step, 0 at a padded one
    for (int64_t j = b * H; j < (b + 1) * H; ++j) {
      // dh(t) = what passed through + the recurrent part from step t + 1 (zero at the last step)
      const scalar_t dht = dhp[j] + dm[j] * rp[j] + dm[BH + j] * rp[BH + j] + dm[2 * BH + j] * rp[2 * BH + j] +
                           dm[3 * BH + j] * rp[3 * BH + j];
      const scalar_t i = g[j], f = g[BH + j], o = g[2 * BH + j], gg = g[3 * BH + j], tc = tcp[j];
      const scalar_t dcin = dcp[j];
      const scalar_t dhz = vf * (dht + dop[j]);  // d of the step's (zoned) h
      const scalar_t zhj = Z ? zh[j] : scalar_t(1), zcj = Z ? zc[j] : scalar_t(1);
      const scalar_t dhc = zhj * dhz;  // d of the cell's new h
      const scalar_t dcc = zcj * vf * dcin + dhc * o * (scalar_t(1) - tc * tc);
      dp[j] = dcc * gg * i * (scalar_t(1) - i);               // d pre_i
      dp[TBH + j] = dcc * cprev[j] * f * (scalar_t(1) - f);   // d pre_f
      dp[2 * TBH + j] = dhc * tc * o * (scalar_t(1) - o);     // d pre_o
      dp[3 * TBH + j] = dcc * i * (scalar_t(1) - gg * gg);    // d pre_g
      // a padded step passes dh and dc on unchanged; a zoned-out unit passes them to its previous value
      dcp[j] = dcc * f + ((scalar_t(1) - zcj) * vf + (scalar_t(1) - vf)) * dcin;
      dhp[j] = (scalar_t(1) - zhj) * dhz + (scalar_t(1) - vf) * dht;
    }
  }
}

template <typename scalar_t, bool Z>
__attribute__((noinline)) void gru_fwd_rows(int64_t bs, int64_t be, int64_t BH, int64_t TBH, int64_t H,
                                            const scalar_t* __restrict__ hpp, const scalar_t* __restrict__ bp,
                                            const scalar_t* __restrict__ x, scalar_t* __restrict__ g,
                                            const scalar_t* __restrict__ hprev, scalar_t* __restrict__ hnew,
                                            scalar_t* __restrict__ hn, scalar_t* __restrict__ o,
                                            const bool* __restrict__ vt, const scalar_t* __restrict__ zh,
                                            scalar_t* __restrict__ hmn, const scalar_t* __restrict__ rp,
                                            int64_t hm_gate) {
  for (int64_t b = bs; b < be; ++b) {
    const scalar_t vf = (vt ? vt[b] : true) ? scalar_t(1) : scalar_t(0);  // see lstm_fwd_rows
    const int64_t base = b * H;
    for (int64_t u = 0; u < H; ++u) {
      const int64_t j = base + u;
      const scalar_t r = sigm(x[j] + hpp[j] + bp[u]);
      const scalar_t z = sigm(x[TBH + j] + hpp[BH + j] + bp[H + u]);
      const scalar_t hnj = hpp[2 * BH + j] + bp[2 * H + u];
      const scalar_t n = tanh_(x[2 * TBH + j] + r * hnj);
      g[j] = r;
      g[BH + j] = z;
      g[2 * BH + j] = n;
      hn[j] = hnj;
      const scalar_t hp = hprev[j];
      scalar_t h = (scalar_t(1) - z) * n + z * hp;
      if (Z) h = zh[j] * h + (scalar_t(1) - zh[j]) * hp;  // zoneout, as in lstm_fwd_rows
      hnew[j] = vf * h + (scalar_t(1) - vf) * hp;
      o[j] = vf * h;
    }
    if (hmn) masked_row<scalar_t, 3>(base, base + H, BH, hm_gate, hnew, rp, hmn);
  }
}

template <typename scalar_t, bool Z>
__attribute__((noinline)) void gru_bwd_rows(int64_t bs, int64_t be, int64_t BH, int64_t TBH, int64_t H,
                                            const scalar_t* __restrict__ g, const scalar_t* __restrict__ hnp,
                                            const scalar_t* __restrict__ hprev, const scalar_t* __restrict__ dop,
                                            const scalar_t* __restrict__ dm, const scalar_t* __restrict__ rp,
                                            scalar_t* __restrict__ dhptr, scalar_t* __restrict__ dx,
                                            scalar_t* __restrict__ dr, const bool* __restrict__ vt,
                                            const scalar_t* __restrict__ zh) {
  for (int64_t b = bs; b < be; ++b) {
    const scalar_t vf = (vt ? vt[b] : true) ? scalar_t(1) : scalar_t(0);
    for (int64_t j = b * H; j < (b + 1) * H; ++j) {
      const scalar_t dht = dhptr[j] + dm[j] * rp[j] + dm[BH + j] * rp[BH + j] + dm[2 * BH + j] * rp[2 * BH + j];
      const scalar_t r = g[j], z = g[BH + j], n = g[2 * BH + j];
      const scalar_t dhz = vf * (dht + dop[j]);  // d of the step's (zoned) h
      const scalar_t zhj = Z ? zh[j] : scalar_t(1);
      const scalar_t dhc = zhj * dhz;  // d of the cell's new h
      const scalar_t dnp = dhc * (scalar_t(1) - z) * (scalar_t(1) - n * n);
      const scalar_t drp = dnp * hnp[j] * r * (scalar_t(1) - r);
      const scalar_t dzp = dhc * (hprev[j] - n) * z * (scalar_t(1) - z);
      dx[j] = drp;
      dx[TBH + j] = dzp;
      dx[2 * TBH + j] = dnp;
      dr[j] = drp;
      dr[TBH + j] = dzp;
      dr[2 * TBH + j] = dnp * r;
      // the direct paths to h(t-1): through z * h(t-1), through a zoned-out unit, and past a padded step
      dhptr[j] = dhc * z + (scalar_t(1) - zhj) * dhz + (scalar_t(1) - vf) * dht;
    }
  }
}

// Rows of B in parallel when a step is big enough to be worth it (a step's passes are a few dozen flops per entry,
// so a smaller grain than the plain element-wise passes').
constexpr int64_t kRowGrain = 1 << 12;
template <typename F>
inline void for_rows(int64_t B, int64_t H, const F& f) {
  at::parallel_for(0, B, std::max<int64_t>(1, kRowGrain / H), [&](int64_t s, int64_t e) { f(s, e); });
}

// Where step t reads and writes: with the backward's tensors kept (training), step t's slot of the saved tensors
// and state t of the (T + 1) states; without (inference), one slot that every step reuses and two states in turn,
// so that memory does not grow with T.
struct Slots {
  int64_t hm_steps, states;
  Slots(int64_t hm_steps_, int64_t states_) : hm_steps(hm_steps_), states(states_) {}
  int64_t saved(int64_t t) const { return hm_steps == 1 ? 0 : t; }
  int64_t state(int64_t t) const { return states == 2 ? t % 2 : t; }
};

// Zoneout factors of step t from a (T, B, H) or (1, B, H) tensor (eval: one expectation for every step); null
// when the tensor is undefined (no zoneout).
template <typename scalar_t>
inline const scalar_t* zone_at(const Tensor& z, int64_t t, int64_t BH) {
  if (!z.defined()) return nullptr;
  return z.data_ptr<scalar_t>() + (z.size(0) == 1 ? 0 : t * BH);
}

// dh(0) after the loop: add the recurrent part of the first step.
template <typename scalar_t>
__attribute__((noinline)) void final_dh_range(int64_t s, int64_t e, int64_t BH, int64_t G, const scalar_t* __restrict__ dm,
                    const scalar_t* __restrict__ rp, scalar_t* __restrict__ dh) {
  for (int64_t j = s; j < e; ++j) {
    scalar_t acc = dh[j];
    for (int64_t k = 0; k < G; ++k) acc += dm[k * BH + j] * rp[k * BH + j];
    dh[j] = acc;
  }
}

// ------------------------------------------------------------------------------------------------------------ LSTM
template <typename scalar_t>
void lstm_forward_loop(const Tensor& xw, const Tensor& wt, const Tensor& rmask, const Tensor& step, const Tensor& zh,
                       const Tensor& zc, Tensor& hs, Tensor& cs, Tensor& hm, Tensor& gates, Tensor& tcs, Tensor& out,
                       bool shared) {
  const int64_t T = xw.size(1), B = xw.size(2), H = xw.size(3), BH = B * H, TBH = T * BH;
  Tensor pre = at::empty({4, B, H}, xw.options());
  const bool* sp = step.defined() ? step.data_ptr<bool>() : nullptr;
  const scalar_t* __restrict__ x0 = ptr<scalar_t>(xw);
  const scalar_t* __restrict__ rp = ptr<scalar_t>(rmask);
  scalar_t* __restrict__ pp = ptr<scalar_t>(pre);
  scalar_t* __restrict__ hs0 = ptr<scalar_t>(hs);
  scalar_t* __restrict__ cs0 = ptr<scalar_t>(cs);
  scalar_t* __restrict__ hm0 = ptr<scalar_t>(hm);
  scalar_t* __restrict__ g0 = ptr<scalar_t>(gates);
  scalar_t* __restrict__ tc0 = ptr<scalar_t>(tcs);
  scalar_t* __restrict__ o0 = ptr<scalar_t>(out);
  const bool lp = wt.scalar_type() != xw.scalar_type();
  Tensor pre_lp = lp ? at::empty({4, B, H}, wt.options()) : Tensor();
  const Slots at_(hm.size(1), hs.size(0));
  if (!shared) write_masked(hm0, hs0, rp, 4, 0, at_.hm_steps, BH);
  // with `shared` (inference: two states in turn), the two states as every gate's input, made once: three view
  // ops per step cost a measurable part of a B = 1 step
  Tensor as[2];
  if (shared)
    for (int64_t k = 0; k < 2; ++k) as[k] = hs.select(0, k).unsqueeze(0).expand({4, B, H});
  for (int64_t t = 0; t < T; ++t) {
    // (4, B, H): (h(t-1) * m_k) @ W_k^T; with `shared`, h(t-1) itself for every gate, read from the state
    const Tensor a = shared ? as[at_.state(t)] : hm.select(1, at_.saved(t));
    if (lp) {
      at::bmm_out(pre_lp, a.to(wt.scalar_type()), wt);
      pre.copy_(pre_lp);
    } else {
      at::bmm_out(pre, a, wt);
    }
    const scalar_t* __restrict__ x = x0 + t * BH;  // gate k at x + k * TBH
    scalar_t* __restrict__ g = g0 + at_.saved(t) * 4 * BH;
    const scalar_t* __restrict__ hprev = hs0 + at_.state(t) * BH;
    const scalar_t* __restrict__ cprev = cs0 + at_.state(t) * BH;
    scalar_t* __restrict__ hnew = hs0 + at_.state(t + 1) * BH;
    scalar_t* __restrict__ cnew = cs0 + at_.state(t + 1) * BH;
    scalar_t* __restrict__ tc = tc0 + at_.saved(t) * BH;
    scalar_t* __restrict__ o = o0 + t * BH;
    const bool* vt = sp ? sp + t * B : nullptr;
    const scalar_t* zht = zone_at<scalar_t>(zh, t, BH);
    const scalar_t* zct = zone_at<scalar_t>(zc, t, BH);
    scalar_t* hmn = t + 1 < T && !shared ? hm0 + at_.saved(t + 1) * BH : nullptr;  // gate k at hmn + k * hm_gate
    const int64_t hm_gate = at_.hm_steps * BH;
    for_rows(B, H, [&](int64_t s0, int64_t e0) {
      if (zht)
        lstm_fwd_rows<scalar_t, true>(s0, e0, BH, TBH, H, pp, x, g, hprev, cprev, hnew, cnew, tc, o, vt, zht, zct,
                                      hmn, rp, hm_gate);
      else
        lstm_fwd_rows<scalar_t, false>(s0, e0, BH, TBH, H, pp, x, g, hprev, cprev, hnew, cnew, tc, o, vt, zht, zct,
                                       hmn, rp, hm_gate);
    });
  }
}

std::vector<Tensor> lstm_forward(Tensor xw, Tensor w_hh, Tensor rmask, Tensor h0, Tensor c0, Tensor step, Tensor zh,
                                 Tensor zc, bool save) {
  const int64_t T = xw.size(1), B = xw.size(2), H = xw.size(3);
  auto opts = xw.options();
  // (4, H_in, H_out), made contiguous once: the per-step bmm runs markedly slower on the transposed view
  Tensor wt = w_hh.view({4, H, H}).transpose(1, 2).contiguous();
  const int64_t S = save ? T : 1;  // steps kept for the backward: all, or only the current one
  Tensor hs = at::empty({save ? T + 1 : 2, B, H}, opts), cs = at::empty({save ? T + 1 : 2, B, H}, opts);
  hs[0].copy_(h0);
  cs[0].copy_(c0);
  Tensor hm = at::empty({4, S, B, H}, opts);
  Tensor gates = at::empty({S, 4, B, H}, opts), tcs = at::empty({S, B, H}, opts), out = at::empty({T, B, H}, opts);
  Tensor st = step.numel() ? step : Tensor();
  Tensor zht = zh.numel() ? zh : Tensor(), zct = zc.numel() ? zc : Tensor();
  // An all-ones recurrent mask (zoneout or padding without recurrent dropout) in inference: every gate multiplies
  // h(t-1) itself, read from the state, and no masked copy is written (training keeps them for the backward).
  const bool shared = !save && at::all(rmask.eq(1)).item<bool>();
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "embdrop_lstm_forward", [&] {
    lstm_forward_loop<scalar_t>(xw, wt, rmask, st, zht, zct, hs, cs, hm, gates, tcs, out, shared);
  });
  if (!save) {  // the final state as a one-step history
    hs = hs.narrow(0, T % 2, 1);
    cs = cs.narrow(0, T % 2, 1);
  }
  return {out, hs, cs, hm, gates, tcs};
}

template <typename scalar_t>
void lstm_backward_loop(const Tensor& dout, const Tensor& w3, const Tensor& rmask, const Tensor& step,
                        const Tensor& zh, const Tensor& zc, const Tensor& cs, const Tensor& gates, const Tensor& tcs,
                        Tensor& dh, Tensor& dc, Tensor& dpre) {
  const int64_t T = gates.size(0), B = gates.size(2), H = gates.size(3), BH = B * H, TBH = T * BH;
  Tensor dhm = at::zeros({4, B, H}, dh.options());
  const bool lp = w3.scalar_type() != dh.scalar_type();
  Tensor dhm_lp = lp ? at::empty({4, B, H}, w3.options()) : Tensor();
  const bool* sp = step.defined() ? step.data_ptr<bool>() : nullptr;
  scalar_t* __restrict__ dhp = ptr<scalar_t>(dh);
  scalar_t* __restrict__ dcp = ptr<scalar_t>(dc);
  const scalar_t* __restrict__ rp = ptr<scalar_t>(rmask);
  const scalar_t* __restrict__ dm = ptr<scalar_t>(dhm);
  scalar_t* __restrict__ dpre0 = ptr<scalar_t>(dpre);
  const scalar_t* __restrict__ g0 = ptr<scalar_t>(gates);
  const scalar_t* __restrict__ tc0 = ptr<scalar_t>(tcs);
  const scalar_t* __restrict__ cs0 = ptr<scalar_t>(cs);
  const scalar_t* __restrict__ do0 = ptr<scalar_t>(dout);
  for (int64_t t = T - 1; t >= 0; --t) {
    const scalar_t* __restrict__ g = g0 + t * 4 * BH;
    const scalar_t* __restrict__ tcp = tc0 + t * BH;
    const scalar_t* __restrict__ cprev = cs0 + t * BH;
    const scalar_t* __restrict__ dop = do0 + t * BH;
    scalar_t* __restrict__ dp = dpre0 + t * BH;  // gate k of step t at dp + k * TBH
    const bool* vt = sp ? sp + t * B : nullptr;
    const scalar_t* zht = zone_at<scalar_t>(zh, t, BH);
    const scalar_t* zct = zone_at<scalar_t>(zc, t, BH);
    for_rows(B, H, [&](int64_t s0, int64_t e0) {
      if (zht)
        lstm_bwd_rows<scalar_t, true>(s0, e0, BH, TBH, H, g, tcp, cprev, dop, dm, rp, dhp, dcp, dp, vt, zht, zct);
      else
        lstm_bwd_rows<scalar_t, false>(s0, e0, BH, TBH, H, g, tcp, cprev, dop, dm, rp, dhp, dcp, dp, vt, zht, zct);
    });
    if (lp) {
      at::bmm_out(dhm_lp, dpre.select(1, t).to(w3.scalar_type()), w3);
      dhm.copy_(dhm_lp);
    } else {
      at::bmm_out(dhm, dpre.select(1, t), w3);  // (4, B, H_in): d(h(t-1) * m_k) for each gate
    }
  }
  for_range(BH, [&](int64_t s0, int64_t e0) { final_dh_range<scalar_t>(s0, e0, BH, 4, dm, rp, dhp); });
}

std::vector<Tensor> lstm_backward(Tensor dout, Tensor dhT, Tensor dcT, Tensor w_hh, Tensor rmask, Tensor cs,
                                  Tensor hm, Tensor gates, Tensor tcs, Tensor step, Tensor zh, Tensor zc) {
  const int64_t T = gates.size(0), B = gates.size(2), H = gates.size(3);
  Tensor w3 = w_hh.view({4, H, H});
  Tensor dh = dhT.clone(), dc = dcT.clone();
  Tensor dpre = at::empty({4, T, B, H}, gates.options());
  Tensor st = step.numel() ? step : Tensor();
  Tensor zht = zh.numel() ? zh : Tensor(), zct = zc.numel() ? zc : Tensor();
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "embdrop_lstm_backward", [&] {
    lstm_backward_loop<scalar_t>(dout, w3, rmask, st, zht, zct, cs, gates, tcs, dh, dc, dpre);
  });
  // dW_k = sum over t, b of dpre_k[t, b]^T (h(t-1) * m_k)[b]: one batched GEMM over all steps, on views.
  const auto wtype = w_hh.scalar_type();  // the GEMM's dtype and dW's (see the top of the file)
  Tensor dw = at::bmm(dpre.view({4, T * B, H}).transpose(1, 2).to(wtype), hm.view({4, T * B, H}).to(wtype));
  return {dpre, dw.reshape({4 * H, H}), dh, dc};
}

// ------------------------------------------------------------------------------------------------------------- GRU
template <typename scalar_t>
void gru_forward_loop(const Tensor& xw, const Tensor& wt, const Tensor& b_hh, const Tensor& rmask,
                      const Tensor& step, const Tensor& zh, Tensor& hs, Tensor& hm, Tensor& gates, Tensor& hpn,
                      Tensor& out, bool shared) {
  const int64_t T = xw.size(1), B = xw.size(2), H = xw.size(3), BH = B * H, TBH = T * BH;
  Tensor hp = at::empty({3, B, H}, xw.options());
  const bool* sp = step.defined() ? step.data_ptr<bool>() : nullptr;
  Tensor bias = b_hh.numel() ? b_hh.contiguous() : at::zeros({3 * H}, xw.options());  // (3H,)
  const scalar_t* __restrict__ bp = ptr<scalar_t>(bias);
  const scalar_t* __restrict__ x0 = ptr<scalar_t>(xw);
  const scalar_t* __restrict__ rp = ptr<scalar_t>(rmask);
  const scalar_t* __restrict__ hpp = ptr<scalar_t>(hp);
  scalar_t* __restrict__ hs0 = ptr<scalar_t>(hs);
  scalar_t* __restrict__ hm0 = ptr<scalar_t>(hm);
  scalar_t* __restrict__ g0 = ptr<scalar_t>(gates);
  scalar_t* __restrict__ hn0 = ptr<scalar_t>(hpn);
  scalar_t* __restrict__ o0 = ptr<scalar_t>(out);
  const bool lp = wt.scalar_type() != xw.scalar_type();
  Tensor hp_lp = lp ? at::empty({3, B, H}, wt.options()) : Tensor();
  const Slots at_(hm.size(1), hs.size(0));
  if (!shared) write_masked(hm0, hs0, rp, 3, 0, at_.hm_steps, BH);
  // with `shared` (inference: two states in turn), the two states as every gate's input, made once: three view
  // ops per step cost a measurable part of a B = 1 step
  Tensor as[2];
  if (shared)
    for (int64_t k = 0; k < 2; ++k) as[k] = hs.select(0, k).unsqueeze(0).expand({3, B, H});
  for (int64_t t = 0; t < T; ++t) {
    // (3, B, H): (h(t-1) * m_k) @ U_k^T; with `shared`, h(t-1) itself (see the LSTM's loop)
    const Tensor a = shared ? as[at_.state(t)] : hm.select(1, at_.saved(t));
    if (lp) {
      at::bmm_out(hp_lp, a.to(wt.scalar_type()), wt);
      hp.copy_(hp_lp);
    } else {
      at::bmm_out(hp, a, wt);
    }
    const scalar_t* __restrict__ x = x0 + t * BH;
    scalar_t* __restrict__ g = g0 + at_.saved(t) * 3 * BH;
    const scalar_t* __restrict__ hprev = hs0 + at_.state(t) * BH;
    scalar_t* __restrict__ hnew = hs0 + at_.state(t + 1) * BH;
    scalar_t* __restrict__ hn = hn0 + at_.saved(t) * BH;
    scalar_t* __restrict__ o = o0 + t * BH;
    const bool* vt = sp ? sp + t * B : nullptr;
    const scalar_t* zht = zone_at<scalar_t>(zh, t, BH);
    scalar_t* hmn = t + 1 < T && !shared ? hm0 + at_.saved(t + 1) * BH : nullptr;  // as in the LSTM's loop
    const int64_t hm_gate = at_.hm_steps * BH;
    for_rows(B, H, [&](int64_t s0, int64_t e0) {
      if (zht)
        gru_fwd_rows<scalar_t, true>(s0, e0, BH, TBH, H, hpp, bp, x, g, hprev, hnew, hn, o, vt, zht, hmn, rp, hm_gate);
      else
        gru_fwd_rows<scalar_t, false>(s0, e0, BH, TBH, H, hpp, bp, x, g, hprev, hnew, hn, o, vt, zht, hmn, rp,
                                      hm_gate);
    });
  }
}

std::vector<Tensor> gru_forward(Tensor xw, Tensor w_hh, Tensor b_hh, Tensor rmask, Tensor h0, Tensor step,
                                Tensor zh, bool save) {
  const int64_t T = xw.size(1), B = xw.size(2), H = xw.size(3);
  auto opts = xw.options();
  Tensor wt = w_hh.view({3, H, H}).transpose(1, 2).contiguous();  // (3, H_in, H_out), contiguous as for the LSTM
  const int64_t S = save ? T : 1;  // as in lstm_forward
  Tensor hs = at::empty({save ? T + 1 : 2, B, H}, opts);
  hs[0].copy_(h0);
  Tensor hm = at::empty({3, S, B, H}, opts);
  Tensor gates = at::empty({S, 3, B, H}, opts), hpn = at::empty({S, B, H}, opts), out = at::empty({T, B, H}, opts);
  Tensor st = step.numel() ? step : Tensor();
  Tensor zht = zh.numel() ? zh : Tensor();
  const bool shared = !save && at::all(rmask.eq(1)).item<bool>();  // as in lstm_forward
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "embdrop_gru_forward", [&] {
    gru_forward_loop<scalar_t>(xw, wt, b_hh, rmask, st, zht, hs, hm, gates, hpn, out, shared);
  });
  if (!save) hs = hs.narrow(0, T % 2, 1);
  return {out, hs, hm, gates, hpn};
}

template <typename scalar_t>
void gru_backward_loop(const Tensor& dout, const Tensor& w3, const Tensor& rmask, const Tensor& step,
                       const Tensor& zh, const Tensor& hs, const Tensor& gates, const Tensor& hpn, Tensor& dh,
                       Tensor& dxw, Tensor& dhp) {
  const int64_t T = gates.size(0), B = gates.size(2), H = gates.size(3), BH = B * H, TBH = T * BH;
  Tensor dhm = at::zeros({3, B, H}, dh.options());
  const bool lp = w3.scalar_type() != dh.scalar_type();
  Tensor dhm_lp = lp ? at::empty({3, B, H}, w3.options()) : Tensor();
  const bool* sp = step.defined() ? step.data_ptr<bool>() : nullptr;
  scalar_t* __restrict__ dhptr = ptr<scalar_t>(dh);
  const scalar_t* __restrict__ rp = ptr<scalar_t>(rmask);
  const scalar_t* __restrict__ dm = ptr<scalar_t>(dhm);
  scalar_t* __restrict__ dx0 = ptr<scalar_t>(dxw);
  scalar_t* __restrict__ dr0 = ptr<scalar_t>(dhp);
  const scalar_t* __restrict__ g0 = ptr<scalar_t>(gates);
  const scalar_t* __restrict__ hn0 = ptr<scalar_t>(hpn);
  const scalar_t* __restrict__ hs0 = ptr<scalar_t>(hs);
  const scalar_t* __restrict__ do0 = ptr<scalar_t>(dout);
  for (int64_t t = T - 1; t >= 0; --t) {
    const scalar_t* __restrict__ g = g0 + t * 3 * BH;
    const scalar_t* __restrict__ hnp = hn0 + t * BH;
    const scalar_t* __restrict__ hprev = hs0 + t * BH;
    const scalar_t* __restrict__ dop = do0 + t * BH;
    scalar_t* __restrict__ dx = dx0 + t * BH;
    scalar_t* __restrict__ dr = dr0 + t * BH;
    const bool* vt = sp ? sp + t * B : nullptr;
    const scalar_t* zht = zone_at<scalar_t>(zh, t, BH);
    for_rows(B, H, [&](int64_t s0, int64_t e0) {
      if (zht)
        gru_bwd_rows<scalar_t, true>(s0, e0, BH, TBH, H, g, hnp, hprev, dop, dm, rp, dhptr, dx, dr, vt, zht);
      else
        gru_bwd_rows<scalar_t, false>(s0, e0, BH, TBH, H, g, hnp, hprev, dop, dm, rp, dhptr, dx, dr, vt, zht);
    });
    if (lp) {
      at::bmm_out(dhm_lp, dhp.select(1, t).to(w3.scalar_type()), w3);
      dhm.copy_(dhm_lp);
    } else {
      at::bmm_out(dhm, dhp.select(1, t), w3);
    }
  }
  for_range(BH, [&](int64_t s0, int64_t e0) { final_dh_range<scalar_t>(s0, e0, BH, 3, dm, rp, dhptr); });
}

std::vector<Tensor> gru_backward(Tensor dout, Tensor dhT, Tensor w_hh, Tensor rmask, Tensor hs, Tensor hm,
                                 Tensor gates, Tensor hpn, Tensor step, Tensor zh) {
  const int64_t T = gates.size(0), B = gates.size(2), H = gates.size(3);
  Tensor w3 = w_hh.view({3, H, H});
  Tensor dh = dhT.clone();
  Tensor dxw = at::empty({3, T, B, H}, gates.options()), dhp = at::empty({3, T, B, H}, gates.options());
  Tensor st = step.numel() ? step : Tensor();
  Tensor zht = zh.numel() ? zh : Tensor();
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "embdrop_gru_backward", [&] {
    gru_backward_loop<scalar_t>(dout, w3, rmask, st, zht, hs, gates, hpn, dh, dxw, dhp);
  });
  const auto wtype = w_hh.scalar_type();
  Tensor dw = at::bmm(dhp.view({3, T * B, H}).transpose(1, 2).to(wtype), hm.view({3, T * B, H}).to(wtype));
  Tensor db = dhp.sum({1, 2}).reshape({3 * H});
  return {dxw, dw.reshape({3 * H, H}), db, dh};
}

// ------------------------------------------------------------------------------------------------ keep-mask draw
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

// ------------------------------------------------------------------------------------------ embedding dropout
// embdrop.functional.masks.word_type_mask: the hashed keep-mask of the (B, V) table ("sample") or of the (V,)
// table ("batch") read at the ids, without drawing the table. Position n of ids (B*T,) reads entry
// (n / T) * V + id, or id when T = 0; kept entries hold value, dropped ones 0, padding ids 1.
Tensor word_keep(Tensor ids, int64_t T, int64_t V, int64_t threshold, int64_t seed, int64_t padding_idx,
                 double value, at::ScalarType dtype) {
  const int64_t N = ids.numel();
  TORCH_CHECK(ids.is_contiguous() && ids.scalar_type() == at::kLong, "word_keep: contiguous int64 ids expected");
  Tensor out = at::empty({N}, at::TensorOptions().dtype(dtype));
  const uint64_t key = static_cast<uint64_t>(seed);
  const uint32_t s0 = static_cast<uint32_t>(key), s1 = static_cast<uint32_t>(key >> 32);
  const int64_t* id = ids.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, dtype, "embdrop_word_keep", [&] {
    scalar_t* o = ptr<scalar_t>(out);
    const scalar_t kept = static_cast<scalar_t>(value);
    at::parallel_for(0, N, kGrain, [&](int64_t s, int64_t e) {
      for (int64_t n = s; n < e; ++n) {
        const uint32_t i = static_cast<uint32_t>(T > 0 ? (n / T) * V + id[n] : id[n]);
        const uint32_t u = mix32(mix32(i ^ s0) + s1);
        o[n] = id[n] == padding_idx                                         ? scalar_t(1)
               : static_cast<uint64_t>(u) < static_cast<uint64_t>(threshold) ? kept
                                                                             : scalar_t(0);
      }
    });
  });
  return out;
}

// The ids of an embedding op, checked: contiguous int64, each in [0, V) (the ops index memory with them).
const int64_t* checked_ids(const Tensor& ids, int64_t V) {
  TORCH_CHECK(ids.is_contiguous() && ids.scalar_type() == at::kLong, "contiguous int64 ids expected");
  const int64_t* id = ids.data_ptr<int64_t>();
  for (int64_t n = 0, N = ids.numel(); n < N; ++n) {
    TORCH_CHECK_INDEX(id[n] >= 0 && id[n] < V, "Invalid value for argument 'ids': expected ids in [0, ", V,
                      "). Received: ", id[n]);
  }
  return id;
}

// out[n, :] = weight[ids[n], :] * scale[n]: the lookup and the mask in one pass over the (N, E) output.
Tensor embedding_scaled(Tensor weight, Tensor ids, Tensor scale) {
  const int64_t N = ids.numel(), V = weight.size(0), E = weight.size(1);
  TORCH_CHECK(scale.is_contiguous() && weight.is_contiguous() && scale.numel() == N &&
                  scale.scalar_type() == weight.scalar_type(),
              "embedding_scaled: contiguous weight (V, E) and scale (N,) of weight's dtype expected");
  const int64_t* id = checked_ids(ids, V);
  Tensor out = at::empty({N, E}, weight.options());
  AT_DISPATCH_FLOATING_TYPES(weight.scalar_type(), "embdrop_embedding_scaled", [&] {
    const scalar_t* w = ptr<scalar_t>(weight);
    const scalar_t* sc = ptr<scalar_t>(scale);
    scalar_t* o = ptr<scalar_t>(out);
    at::parallel_for(0, N, std::max<int64_t>(1, kGrain / std::max<int64_t>(E, 1)), [&](int64_t s, int64_t e) {
      for (int64_t n = s; n < e; ++n) {
        const scalar_t* __restrict__ row = w + id[n] * E;
        scalar_t* __restrict__ dst = o + n * E;
        const scalar_t f = sc[n];
        for (int64_t j = 0; j < E; ++j) dst[j] = row[j] * f;
      }
    });
  });
  return out;
}

// The weight's dense gradient (V, E): row ids[n] gathers grad[n, :] * scale[n]; padding ids get none. Threads
// split the columns, so that repeated ids never race.
Tensor embedding_scaled_backward(Tensor grad, Tensor ids, Tensor scale, int64_t V, int64_t padding_idx) {
  const int64_t N = ids.numel(), E = grad.size(1);
  TORCH_CHECK(scale.is_contiguous() && grad.is_contiguous() && grad.size(0) == N &&
                  scale.numel() == N && scale.scalar_type() == grad.scalar_type(),
              "embedding_scaled_backward: contiguous grad (N, E) and scale (N,) of grad's dtype expected");
  const int64_t* id = checked_ids(ids, V);
  Tensor gw = at::zeros({V, E}, grad.options());
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "embdrop_embedding_scaled_backward", [&] {
    const scalar_t* g = ptr<scalar_t>(grad);
    const scalar_t* sc = ptr<scalar_t>(scale);
    scalar_t* o = ptr<scalar_t>(gw);
    at::parallel_for(0, E, 16, [&](int64_t c0, int64_t c1) {
      for (int64_t n = 0; n < N; ++n) {
        if (id[n] == padding_idx) continue;
        const scalar_t* __restrict__ src = g + n * E;
        scalar_t* __restrict__ dst = o + id[n] * E;
        const scalar_t f = sc[n];
        for (int64_t j = c0; j < c1; ++j) dst[j] += src[j] * f;
      }
    });
  });
  return gw;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lstm_forward", &lstm_forward);
  m.def("lstm_backward", &lstm_backward);
  m.def("gru_forward", &gru_forward);
  m.def("gru_backward", &gru_backward);
  m.def("keep_mask", &keep_mask);
  m.def("hashed_scale", &hashed_scale);
  m.def("word_keep", &word_keep);
  m.def("embedding_scaled", &embedding_scaled);
  m.def("embedding_scaled_backward", &embedding_scaled_backward);
}
