// The GRU (reset_after, r, z, n) of the fused CPU recurrences; layouts and conventions as in lstm.cpp.
#include "common.h"

namespace embdrop {

// The passes below run over rows b in [bs, be) (one row = one sequence, H units), so that the padding flag is the
// same for a whole inner loop and every operand is loaded unconditionally: the inner loops then vectorise.
// Zoneout (Z = true): zh, zc are this step's update factors, 1 (take the new value) or 0 (keep the previous one)
// in training, 1 - p at eval (the expectation); the zoned value is z * new + (1 - z) * previous.
template <typename scalar_t, bool Z>
__attribute__((noinline)) void gru_fwd_rows(int64_t bs, int64_t be, int64_t BH, int64_t TBH, int64_t H,
                                            int64_t PBH, int64_t poff, const scalar_t* __restrict__ hpp,
                                            const scalar_t* __restrict__ bi, const scalar_t* __restrict__ bp,
                                            const scalar_t* __restrict__ x, scalar_t* __restrict__ g,
                                            const scalar_t* __restrict__ hprev, scalar_t* __restrict__ hnew,
                                            scalar_t* __restrict__ hn, scalar_t* __restrict__ o,
                                            const bool* __restrict__ vt, const scalar_t* __restrict__ zh,
                                            scalar_t* __restrict__ hmn, const scalar_t* __restrict__ rp,
                                            int64_t hm_gate, OutShift osh) {
  for (int64_t b = bs; b < be; ++b) {
    const scalar_t vf = (vt ? vt[b] : true) ? scalar_t(1) : scalar_t(0);  // see lstm_fwd_rows
    const int64_t base = b * H, od = osh.at(b);
    for (int64_t u = 0; u < H; ++u) {
      const int64_t j = base + u, q = j - poff;  // q: the entry's place in hpp (see lstm_fwd_rows)
      // bi: the input projection's bias (see lstm.cpp), bp: the recurrent one
      const scalar_t r = sigm((x[j] + bi[u]) + hpp[q] + bp[u]);
      const scalar_t z = sigm((x[TBH + j] + bi[H + u]) + hpp[PBH + q] + bp[H + u]);
      const scalar_t hnj = hpp[2 * PBH + q] + bp[2 * H + u];
      const scalar_t n = tanh_((x[2 * TBH + j] + bi[2 * H + u]) + r * hnj);
      g[j] = r;
      g[BH + j] = z;
      g[2 * BH + j] = n;
      hn[j] = hnj;
      const scalar_t hp = hprev[j];
      scalar_t h = (scalar_t(1) - z) * n + z * hp;
      if (Z) h = zh[j] * h + (scalar_t(1) - zh[j]) * hp;  // zoneout, as in lstm_fwd_rows
      hnew[j] = vf * h + (scalar_t(1) - vf) * hp;
      o[j + od] = vf * h;
    }
    if (hmn) masked_row<scalar_t, 3>(base, base + H, BH, hm_gate, hnew, rp, hmn);
  }
}

template <typename scalar_t, bool Z>
__attribute__((noinline)) void gru_bwd_rows(int64_t bs, int64_t be, int64_t BH, int64_t TBH, int64_t H,
                                            int64_t PBH, int64_t poff,
                                            const scalar_t* __restrict__ g, const scalar_t* __restrict__ hnp,
                                            const scalar_t* __restrict__ hprev, const scalar_t* __restrict__ dop,
                                            const scalar_t* __restrict__ dm, const scalar_t* __restrict__ rp,
                                            scalar_t* __restrict__ dhptr, scalar_t* __restrict__ dx,
                                            scalar_t* __restrict__ dr, const bool* __restrict__ vt,
                                            const scalar_t* __restrict__ zh, OutShift dsh) {
  // as in lstm_bwd_rows (the forward's bias, per unit, keeps rows)
  const int64_t span = vt || dsh.s ? H : (be - bs) * H;
  for (int64_t j0 = bs * H; j0 < be * H; j0 += span) {
    const scalar_t vf = (vt ? vt[j0 / H] : true) ? scalar_t(1) : scalar_t(0);
    const int64_t od = dsh.at(j0 / H);
    for (int64_t j = j0; j < j0 + span; ++j) {
      const int64_t q = j - poff;  // the entry's place in dm (see lstm_bwd_rows)
      const scalar_t dht = dhptr[j] + dm[q] * rp[j] + dm[PBH + q] * rp[BH + j] + dm[2 * PBH + q] * rp[2 * BH + j];
      const scalar_t r = g[j], z = g[BH + j], n = g[2 * BH + j];
      const scalar_t dhz = vf * (dht + dop[j + od]);  // d of the step's (zoned) h
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

template <typename scalar_t>
void gru_forward_loop(const Tensor& xw, const Tensor& b_in, const Tensor& wt, const Tensor& b_hh, const Tensor& rmask,
                      const Tensor& step, const Tensor& zh, Tensor& hs, Tensor& hm, Tensor& gates, Tensor& hpn,
                      Tensor& out, bool shared, bool save, bool kept, const int64_t* os) {
  const int64_t T = xw.size(1), B = xw.size(2), H = xw.size(3), BH = B * H, TBH = T * BH;
  const bool* sp = step.defined() ? step.data_ptr<bool>() : nullptr;
  Tensor bias = b_hh.numel() ? b_hh.contiguous() : at::zeros({3 * H}, xw.options());  // (3H,)
  const scalar_t* __restrict__ bp = ptr<scalar_t>(bias);
  Tensor bias_in = b_in.numel() ? b_in.contiguous() : at::zeros({3 * H}, xw.options());  // (3H,)
  const scalar_t* __restrict__ bi = ptr<scalar_t>(bias_in);
  const scalar_t* __restrict__ x0 = ptr<scalar_t>(xw);
  const scalar_t* __restrict__ rp = ptr<scalar_t>(rmask);
  scalar_t* __restrict__ hs0 = ptr<scalar_t>(hs);
  scalar_t* __restrict__ hm0 = ptr<scalar_t>(hm);
  scalar_t* __restrict__ g0 = ptr<scalar_t>(gates);
  scalar_t* __restrict__ hn0 = ptr<scalar_t>(hpn);
  scalar_t* __restrict__ o0 = ptr<scalar_t>(out);
  const bool lp = wt.scalar_type() != xw.scalar_type();
  const Slots at_(save, T, 3);
  const Tensor wtp = padded_for_steps(wt, 3, B, H);  // as in the LSTM's loop
  auto rows_run = [&](int64_t b0, int64_t b1, bool inner_parallel) {  // rows [b0, b1), as in the LSTM's loop
    const int64_t nb = b1 - b0, PBH = nb * H, poff = b0 * H;
    const bool sh = shared && one_call_when_shared(3, nb, H);  // h(t-1) itself for every gate
    Tensor hp = at::empty({3, nb, H}, xw.options());
    Tensor hp_lp = lp ? at::empty({3, nb, H}, wt.options()) : Tensor();
    const scalar_t* __restrict__ hpp = ptr<scalar_t>(hp);
    const int64_t hm_gate = at_.hm_gate(BH, PBH);  // as in the LSTM's loop
    scalar_t* hmb = at_.hm_at(hm0, poff);
    KeptUnits ku;  // one row in inference: its steps' products over the kept units (kept_units)
    if constexpr (std::is_same_v<scalar_t, float>)
      if (kept && nb == 1 && !sh) ku = kept_units(rp + poff, BH, 3, H);
    if (!sh) masked_row<scalar_t, 3>(poff, poff + PBH, BH, hm_gate, hs0, rp, hmb);
    for (int64_t t = 0; t < T; ++t) {
      // (3, nb, H): (h(t-1) * m_k) @ U_k^T; with `sh`, h(t-1) itself (see the LSTM's loop)
      if (sh)
        step_products<scalar_t>(hp, hp_lp, hs0 + at_.state(t) * BH + poff, 0, wt, 3, nb, H, nullptr, wtp);
      else
        step_products<scalar_t>(hp, hp_lp, hmb + at_.saved(t) * BH + poff, hm_gate, wt, 3, nb, H, &ku, wtp);
      const scalar_t* __restrict__ x = x0 + t * BH;
      scalar_t* __restrict__ g = g0 + at_.saved(t) * 3 * BH;
      const scalar_t* __restrict__ hprev = hs0 + at_.state(t) * BH;
      scalar_t* __restrict__ hnew = hs0 + at_.state(t + 1) * BH;
      scalar_t* __restrict__ hn = hn0 + at_.saved(t) * BH;
      scalar_t* __restrict__ o = o0 + t * BH;
      const bool* vt = sp ? sp + t * B : nullptr;
      const scalar_t* zht = zone_at<scalar_t>(zh, t, BH);
      scalar_t* hmn = t + 1 < T && !sh ? hmb + at_.saved(t + 1) * BH : nullptr;  // as in the LSTM's loop
      auto step_rows = [&](int64_t s0, int64_t e0) {
        if (zht)
          gru_fwd_rows<scalar_t, true>(s0, e0, BH, TBH, H, PBH, poff, hpp, bi, bp, x, g, hprev, hnew, hn, o, vt, zht,
                                       hmn, rp, hm_gate, OutShift{os, t, T, BH});
        else
          gru_fwd_rows<scalar_t, false>(s0, e0, BH, TBH, H, PBH, poff, hpp, bi, bp, x, g, hprev, hnew, hn, o, vt, zht,
                                        hmn, rp, hm_gate, OutShift{os, t, T, BH});
      };
      block_rows(inner_parallel, b0, nb, H, step_rows);
    }
  };
  for_row_blocks(B, H, rows_run);
}

std::vector<Tensor> gru_forward(Tensor xw, Tensor w_hh, Tensor b_hh, Tensor rmask, Tensor h0, Tensor step,
                                Tensor zh, bool save, Tensor b_in, Tensor oshift) {
  const int64_t T = xw.size(1), B = xw.size(2), H = xw.size(3);
  auto opts = xw.options();
  Tensor wt = gates_transposed(w_hh, 3, H);  // (3, H_in, H_out), contiguous as for the LSTM
  const int64_t S = save ? T : 1;  // as in lstm_forward
  Tensor hs = pooled_empty({save ? T + 1 : 2, B, H}, opts);
  hs[0].copy_(h0);
  Tensor hm = pooled_empty({3, S, B, H}, opts);
  Tensor gates = pooled_empty({S, 3, B, H}, opts), hpn = pooled_empty({S, B, H}, opts);
  Tensor out = pooled_empty({T, B, H}, opts);
  Tensor st = step.numel() ? step : Tensor();
  Tensor zht = zh.numel() ? zh : Tensor();
  const bool shared = !save && all_ones(rmask);  // as in lstm_forward
  const bool kept = kept_unit_steps(xw, w_hh, save);
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "embdrop_gru_forward", [&] {
    gru_forward_loop<scalar_t>(xw, b_in, wt, b_hh, rmask, st, zht, hs, hm, gates, hpn, out, shared, save, kept,
                               shifts(oshift));
  });
  if (!save) hs = hs.narrow(0, T % 2, 1);
  return {out, hs, hm, gates, hpn};
}

template <typename scalar_t>
void gru_backward_loop(const Tensor& dout, const Tensor& w3, const Tensor& rmask, const Tensor& step,
                       const Tensor& zh, const Tensor& hs, const Tensor& gates, const Tensor& hpn, Tensor& dh,
                       Tensor& dxw, Tensor& dhp, const int64_t* os) {
  const int64_t T = gates.size(0), B = gates.size(2), H = gates.size(3), BH = B * H, TBH = T * BH;
  const bool lp = w3.scalar_type() != dh.scalar_type();
  const bool* sp = step.defined() ? step.data_ptr<bool>() : nullptr;
  const Tensor w3p = padded_for_steps(w3, 3, B, H);
  scalar_t* __restrict__ dhptr = ptr<scalar_t>(dh);
  const scalar_t* __restrict__ rp = ptr<scalar_t>(rmask);
  scalar_t* __restrict__ dx0 = ptr<scalar_t>(dxw);
  scalar_t* __restrict__ dr0 = ptr<scalar_t>(dhp);
  const scalar_t* __restrict__ g0 = ptr<scalar_t>(gates);
  const scalar_t* __restrict__ hn0 = ptr<scalar_t>(hpn);
  const scalar_t* __restrict__ hs0 = ptr<scalar_t>(hs);
  const scalar_t* __restrict__ do0 = ptr<scalar_t>(dout);
  const int64_t dstep = dout.size(0) == T ? BH : 0;  // (1, B, H): one step read at every step (zeros: no gradient)
  auto rows_run = [&](int64_t b0, int64_t b1, bool inner_parallel) {  // rows [b0, b1), as in the LSTM's loop
    const int64_t nb = b1 - b0, PBH = nb * H, poff = b0 * H;
    Tensor dhm = at::zeros({3, nb, H}, dh.options());
    Tensor dhm_lp = lp ? at::empty({3, nb, H}, w3.options()) : Tensor();
    const scalar_t* __restrict__ dm = ptr<scalar_t>(dhm);
    for (int64_t t = T - 1; t >= 0; --t) {
      const scalar_t* __restrict__ g = g0 + t * 3 * BH;
      const scalar_t* __restrict__ hnp = hn0 + t * BH;
      const scalar_t* __restrict__ hprev = hs0 + t * BH;
      const scalar_t* __restrict__ dop = do0 + t * dstep;
      scalar_t* __restrict__ dx = dx0 + t * BH;
      scalar_t* __restrict__ dr = dr0 + t * BH;
      const bool* vt = sp ? sp + t * B : nullptr;
      const scalar_t* zht = zone_at<scalar_t>(zh, t, BH);
      const OutShift dsh{dstep ? os : nullptr, t, T, BH};  // as in the LSTM's loop
      auto step_rows = [&](int64_t s0, int64_t e0) {
        if (zht)
          gru_bwd_rows<scalar_t, true>(s0, e0, BH, TBH, H, PBH, poff, g, hnp, hprev, dop, dm, rp, dhptr, dx, dr, vt,
                                       zht, dsh);
        else
          gru_bwd_rows<scalar_t, false>(s0, e0, BH, TBH, H, PBH, poff, g, hnp, hprev, dop, dm, rp, dhptr, dx, dr, vt,
                                        zht, dsh);
      };
      block_rows(inner_parallel, b0, nb, H, step_rows);
      step_products<scalar_t>(dhm, dhm_lp, dr + poff, TBH, w3, 3, nb, H, nullptr, w3p);
    }
    final_dh_range<scalar_t>(poff, poff + PBH, BH, PBH, poff, 3, dm, rp, dhptr);
  };
  for_row_blocks(B, H, rows_run);
}

std::vector<Tensor> gru_backward(Tensor dout, Tensor dhT, Tensor w_hh, Tensor rmask, Tensor hs, Tensor hm,
                                 Tensor gates, Tensor hpn, Tensor step, Tensor zh, Tensor oshift) {
  const int64_t T = gates.size(0), B = gates.size(2), H = gates.size(3);
  Tensor w3 = w_hh.view({3, H, H});
  Tensor dh = dhT.clone();
  Tensor dxw = pooled_empty({3, T, B, H}, gates.options()), dhp = pooled_empty({3, T, B, H}, gates.options());
  Tensor st = step.numel() ? step : Tensor();
  Tensor zht = zh.numel() ? zh : Tensor();
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "embdrop_gru_backward", [&] {
    gru_backward_loop<scalar_t>(dout, w3, rmask, st, zht, hs, gates, hpn, dh, dxw, dhp, shifts(oshift));
  });
  const auto wtype = w_hh.scalar_type();
  Tensor dw = batched_product(dhp.view({3, T * B, H}).transpose(1, 2).to(wtype), hm.view({3, T * B, H}).to(wtype));
  Tensor db = dhp.sum({1, 2}).reshape({3 * H});
  return {dxw, dw.reshape({3 * H, H}), db, dh};
}


}  // namespace embdrop
