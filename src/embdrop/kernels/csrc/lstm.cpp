// Fused CPU recurrences for embdrop.LSTM / embdrop.GRU with per-gate recurrent dropout masks.
//
// Layouts: xw (G, T, B, H) input projections per gate, without their bias; b_in (G*H) that bias (LSTM: b_ih + b_hh,
// GRU: b_ih) or an empty tensor for none, added to xw's entries as the steps read them (a pass of its own over
// xw cost 2% of an MC-dropout forward); w_hh (G*H, H);
// rmask (G, B, H), already scaled by 1/(1-p); h0, c0 (B, H); step (T, B) bool, or an empty tensor when no step is
// padded; zoneout zh, zc (T, B, H) update masks (1 takes the new value) or (1, B, H) expectations at eval, or empty
// tensors. Gates in torch's order, as nn.LSTM/nn.GRU store them: LSTM i, f, g, o; GRU r, z, n.
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
#include "common.h"

namespace embdrop {

// The passes below run over rows b in [bs, be) (one row = one sequence, H units), so that the padding flag is the
// same for a whole inner loop and every operand is loaded unconditionally: the inner loops then vectorise. Without
// padding the rows are one stretch, so that the vector loop's scalar tail comes once per block, not once per row
// (H = 100 leaves 4 of every 100 entries to scalar code, which cost a tenth of the pass).
// Zoneout (Z = true): zh, zc are this step's update factors, 1 (take the new value) or 0 (keep the previous one)
// in training, 1 - p at eval (the expectation); the zoned value is z * new + (1 - z) * previous.
// S (save): the gates and tanh(c) are written for the backward; without it, 5 of a step's 12 writes per entry less.
template <typename scalar_t, bool Z, bool S>
__attribute__((noinline)) void lstm_fwd_rows(int64_t bs, int64_t be, int64_t BH, int64_t TBH, int64_t H,
                                             int64_t PBH, int64_t poff, const scalar_t* __restrict__ pp,
                                             const scalar_t* __restrict__ bt, const scalar_t* __restrict__ x,
                                             scalar_t* __restrict__ g, const scalar_t* __restrict__ hprev,
                                             const scalar_t* __restrict__ cprev, scalar_t* __restrict__ hnew,
                                             scalar_t* __restrict__ cnew, scalar_t* __restrict__ tc,
                                             scalar_t* __restrict__ o, const bool* __restrict__ vt,
                                             const scalar_t* __restrict__ zh, const scalar_t* __restrict__ zc,
                                             scalar_t* __restrict__ hmn, const scalar_t* __restrict__ rp,
                                             int64_t hm_gate, OutShift osh) {
  const int64_t span = vt || osh.s ? H : (be - bs) * H;
  for (int64_t j0 = bs * H; j0 < be * H; j0 += span) {
    // 1 at a real step, 0 at a padded one; a blend by multiplication vectorises where a select of bools does not,
    // and is exact for finite values (x * 1 + y * 0 == x)
    const scalar_t vf = (vt ? vt[j0 / H] : true) ? scalar_t(1) : scalar_t(0);
    const int64_t od = osh.at(j0 / H);  // the row's output place (OutShift)
    for (int64_t j = j0; j < j0 + span; ++j) {
      // q: the entry's place in pre and in the bias tile bt, which hold rows [poff / H, poff / H + PBH / H)
      const int64_t q = j - poff;
      const scalar_t i = sigm(pp[q] + (x[j] + bt[q]));
      const scalar_t f = sigm(pp[PBH + q] + (x[TBH + j] + bt[PBH + q]));
      const scalar_t gg = tanh_(pp[2 * PBH + q] + (x[2 * TBH + j] + bt[2 * PBH + q]));
      const scalar_t og = sigm(pp[3 * PBH + q] + (x[3 * TBH + j] + bt[3 * PBH + q]));
      if (S) {
        g[j] = i;
        g[BH + j] = f;
        g[2 * BH + j] = gg;
        g[3 * BH + j] = og;
      }
      const scalar_t cp = cprev[j], hp = hprev[j];
      scalar_t c = f * cp + i * gg;
      const scalar_t th = tanh_(c);
      if (S) tc[j] = th;
      scalar_t h = og * th;
      if (Z) {
        c = zc[j] * c + (scalar_t(1) - zc[j]) * cp;
        h = zh[j] * h + (scalar_t(1) - zh[j]) * hp;
      }
      cnew[j] = vf * c + (scalar_t(1) - vf) * cp;
      hnew[j] = vf * h + (scalar_t(1) - vf) * hp;
      o[j + od] = vf * h;
    }
    if (hmn) masked_row<scalar_t, 4>(j0, j0 + span, BH, hm_gate, hnew, rp, hmn);
  }
}

template <typename scalar_t, bool Z>
__attribute__((noinline)) void lstm_bwd_rows(int64_t bs, int64_t be, int64_t BH, int64_t TBH, int64_t H,
                                             int64_t PBH, int64_t poff,
                                             const scalar_t* __restrict__ g, const scalar_t* __restrict__ tcp,
                                             const scalar_t* __restrict__ cprev, const scalar_t* __restrict__ dop,
                                             const scalar_t* __restrict__ dm, const scalar_t* __restrict__ rp,
                                             scalar_t* __restrict__ dhp, scalar_t* __restrict__ dcp,
                                             scalar_t* __restrict__ dp, const bool* __restrict__ vt,
                                             const scalar_t* __restrict__ zh, const scalar_t* __restrict__ zc,
                                             OutShift dsh) {
  const int64_t span = vt || dsh.s ? H : (be - bs) * H;  // as in lstm_fwd_rows
  for (int64_t j0 = bs * H; j0 < be * H; j0 += span) {
    const scalar_t vf = (vt ? vt[j0 / H] : true) ? scalar_t(1) : scalar_t(0);  // 1 at a real step, 0 at a padded one
    const int64_t od = dsh.at(j0 / H);  // the row's output gradient, where the forward wrote the output
    for (int64_t j = j0; j < j0 + span; ++j) {
      // dh(t) = what passed through + the recurrent part from step t + 1 (zero at the last step)
      const int64_t q = j - poff;  // the entry's place in dm, which holds rows [poff / H, poff / H + PBH / H)
      const scalar_t dht = dhp[j] + dm[q] * rp[j] + dm[PBH + q] * rp[BH + j] + dm[2 * PBH + q] * rp[2 * BH + j] +
                           dm[3 * PBH + q] * rp[3 * BH + j];
      const scalar_t i = g[j], f = g[BH + j], gg = g[2 * BH + j], o = g[3 * BH + j], tc = tcp[j];
      const scalar_t dcin = dcp[j];
      const scalar_t dhz = vf * (dht + dop[j + od]);  // d of the step's (zoned) h
      const scalar_t zhj = Z ? zh[j] : scalar_t(1), zcj = Z ? zc[j] : scalar_t(1);
      const scalar_t dhc = zhj * dhz;  // d of the cell's new h
      const scalar_t dcc = zcj * vf * dcin + dhc * o * (scalar_t(1) - tc * tc);
      dp[j] = dcc * gg * i * (scalar_t(1) - i);               // d pre_i
      dp[TBH + j] = dcc * cprev[j] * f * (scalar_t(1) - f);   // d pre_f
      dp[2 * TBH + j] = dcc * i * (scalar_t(1) - gg * gg);    // d pre_g
      dp[3 * TBH + j] = dhc * tc * o * (scalar_t(1) - o);     // d pre_o
      // a padded step passes dh and dc on unchanged; a zoned-out unit passes them to its previous value
      dcp[j] = dcc * f + ((scalar_t(1) - zcj) * vf + (scalar_t(1) - vf)) * dcin;
      dhp[j] = (scalar_t(1) - zhj) * dhz + (scalar_t(1) - vf) * dht;
    }
  }
}

template <typename scalar_t>
void lstm_forward_loop(const Tensor& xw, const Tensor& b_in, const Tensor& wt, const Tensor& rmask, const Tensor& step,
                       const Tensor& zh, const Tensor& zc, Tensor& hs, Tensor& cs, Tensor& hm, Tensor& gates,
                       Tensor& tcs, Tensor& out, bool shared, bool save, bool kept, const int64_t* os) {
  const int64_t T = xw.size(1), B = xw.size(2), H = xw.size(3), BH = B * H, TBH = T * BH;
  const bool* sp = step.defined() ? step.data_ptr<bool>() : nullptr;
  const scalar_t* __restrict__ x0 = ptr<scalar_t>(xw);
  const scalar_t* __restrict__ rp = ptr<scalar_t>(rmask);
  scalar_t* __restrict__ hs0 = ptr<scalar_t>(hs);
  scalar_t* __restrict__ cs0 = ptr<scalar_t>(cs);
  scalar_t* __restrict__ hm0 = ptr<scalar_t>(hm);
  scalar_t* __restrict__ g0 = ptr<scalar_t>(gates);
  scalar_t* __restrict__ tc0 = ptr<scalar_t>(tcs);
  scalar_t* __restrict__ o0 = ptr<scalar_t>(out);
  const bool lp = wt.scalar_type() != xw.scalar_type();
  const Slots at_(save, T, 4);
  const Tensor wtp = padded_for_steps(wt, 4, B, H);  // the kernel's own step products, where they apply
  // The whole recurrence of rows [b0, b1): a row's state depends on that row alone, so that row blocks run apart.
  auto rows_run = [&](int64_t b0, int64_t b1, bool inner_parallel) {
    const int64_t nb = b1 - b0, PBH = nb * H, poff = b0 * H;
    const bool sh = shared && one_call_when_shared(4, nb, H);  // h(t-1) itself for every gate
    Tensor pre = at::empty({4, nb, H}, xw.options());
    Tensor pre_lp = lp ? at::empty({4, nb, H}, wt.options()) : Tensor();
    scalar_t* __restrict__ pp = ptr<scalar_t>(pre);
    const Tensor btile = bias_tile(b_in, 4, nb, H, xw.options());
    const scalar_t* __restrict__ bt = ptr<scalar_t>(btile);
    const int64_t hm_gate = at_.hm_gate(BH, PBH);  // gate k of the block's masked copies at hmb + k * hm_gate
    scalar_t* hmb = at_.hm_at(hm0, poff);
    KeptUnits ku;  // one row in inference: its steps' products over the kept units (kept_units)
    if constexpr (std::is_same_v<scalar_t, float>)
      if (kept && nb == 1 && !sh) ku = kept_units(rp + poff, BH, 4, H);
    if (!sh) masked_row<scalar_t, 4>(poff, poff + PBH, BH, hm_gate, hs0, rp, hmb);  // h(0) * m_k
    for (int64_t t = 0; t < T; ++t) {
      // (4, nb, H): (h(t-1) * m_k) @ W_k^T; with `sh` (inference with an all-ones mask, products small enough
      // for one call: one_call_when_shared), h(t-1) itself for every gate, read from the state
      if (sh)
        step_products<scalar_t>(pre, pre_lp, hs0 + at_.state(t) * BH + poff, 0, wt, 4, nb, H, nullptr, wtp);
      else
        step_products<scalar_t>(pre, pre_lp, hmb + at_.saved(t) * BH + poff, hm_gate, wt, 4, nb, H, &ku, wtp);
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
      scalar_t* hmn = t + 1 < T && !sh ? hmb + at_.saved(t + 1) * BH : nullptr;  // gate k at hmn + k * hm_gate
      auto step_rows = [&](int64_t s0, int64_t e0) {
        auto rows = [&](auto zoned, auto saving) {
          lstm_fwd_rows<scalar_t, decltype(zoned)::value, decltype(saving)::value>(
              s0, e0, BH, TBH, H, PBH, poff, pp, bt, x, g, hprev, cprev, hnew, cnew, tc, o, vt, zht, zct, hmn, rp,
              hm_gate, OutShift{os, t, T, BH});
        };
        if (zht && save)
          rows(std::true_type{}, std::true_type{});
        else if (zht)
          rows(std::true_type{}, std::false_type{});
        else if (save)
          rows(std::false_type{}, std::true_type{});
        else
          rows(std::false_type{}, std::false_type{});
      };
      block_rows(inner_parallel, b0, nb, H, step_rows);
    }
  };
  for_row_blocks(B, H, rows_run);
}

std::vector<Tensor> lstm_forward(Tensor xw, Tensor w_hh, Tensor rmask, Tensor h0, Tensor c0, Tensor step, Tensor zh,
                                 Tensor zc, bool save, Tensor b_in, Tensor oshift) {
  const int64_t T = xw.size(1), B = xw.size(2), H = xw.size(3);
  auto opts = xw.options();
  // (4, H_in, H_out), made contiguous once: oneDNN's per-step product runs markedly slower on the transposed view
  // (0.50 against 0.35 ms a step at (B, H) = (10, 650) on one thread of the AMD EPYC; MKL's the same either way)
  Tensor wt = gates_transposed(w_hh, 4, H);
  const int64_t S = save ? T : 1;  // steps kept for the backward: all, or only the current one
  Tensor hs = pooled_empty({save ? T + 1 : 2, B, H}, opts), cs = pooled_empty({save ? T + 1 : 2, B, H}, opts);
  hs[0].copy_(h0);
  cs[0].copy_(c0);
  Tensor hm = pooled_empty({4, S, B, H}, opts);
  Tensor gates = pooled_empty({S, 4, B, H}, opts), tcs = pooled_empty({S, B, H}, opts);
  Tensor out = pooled_empty({T, B, H}, opts);
  Tensor st = step.numel() ? step : Tensor();
  Tensor zht = zh.numel() ? zh : Tensor(), zct = zc.numel() ? zc : Tensor();
  // An all-ones recurrent mask (zoneout or padding without recurrent dropout) in inference: every gate may multiply
  // h(t-1) itself, read from the state, without the masked copies (training keeps them for the backward); the row
  // blocks whose products take one call that way do (one_call_when_shared).
  const bool shared = !save && all_ones(rmask);
  const bool kept = kept_unit_steps(xw, w_hh, save);
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "embdrop_lstm_forward", [&] {
    lstm_forward_loop<scalar_t>(xw, b_in, wt, rmask, st, zht, zct, hs, cs, hm, gates, tcs, out, shared, save, kept,
                                shifts(oshift));
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
                        Tensor& dh, Tensor& dc, Tensor& dpre, const int64_t* os) {
  const int64_t T = gates.size(0), B = gates.size(2), H = gates.size(3), BH = B * H, TBH = T * BH;
  const bool lp = w3.scalar_type() != dh.scalar_type();
  const bool* sp = step.defined() ? step.data_ptr<bool>() : nullptr;
  const Tensor w3p = padded_for_steps(w3, 4, B, H);
  scalar_t* __restrict__ dhp = ptr<scalar_t>(dh);
  scalar_t* __restrict__ dcp = ptr<scalar_t>(dc);
  const scalar_t* __restrict__ rp = ptr<scalar_t>(rmask);
  scalar_t* __restrict__ dpre0 = ptr<scalar_t>(dpre);
  const scalar_t* __restrict__ g0 = ptr<scalar_t>(gates);
  const scalar_t* __restrict__ tc0 = ptr<scalar_t>(tcs);
  const scalar_t* __restrict__ cs0 = ptr<scalar_t>(cs);
  const scalar_t* __restrict__ do0 = ptr<scalar_t>(dout);
  const int64_t dstep = dout.size(0) == T ? BH : 0;  // (1, B, H): one step read at every step (zeros: no gradient)
  // rows [b0, b1) back through all T steps (see the forward's row blocks)
  auto rows_run = [&](int64_t b0, int64_t b1, bool inner_parallel) {
    const int64_t nb = b1 - b0, PBH = nb * H, poff = b0 * H;
    Tensor dhm = at::zeros({4, nb, H}, dh.options());
    Tensor dhm_lp = lp ? at::empty({4, nb, H}, w3.options()) : Tensor();
    const scalar_t* __restrict__ dm = ptr<scalar_t>(dhm);
    for (int64_t t = T - 1; t >= 0; --t) {
      const scalar_t* __restrict__ g = g0 + t * 4 * BH;
      const scalar_t* __restrict__ tcp = tc0 + t * BH;
      const scalar_t* __restrict__ cprev = cs0 + t * BH;
      const scalar_t* __restrict__ dop = do0 + t * dstep;
      scalar_t* __restrict__ dp = dpre0 + t * BH;  // gate k of step t at dp + k * TBH
      const bool* vt = sp ? sp + t * B : nullptr;
      const scalar_t* zht = zone_at<scalar_t>(zh, t, BH);
      const scalar_t* zct = zone_at<scalar_t>(zc, t, BH);
      const OutShift dsh{dstep ? os : nullptr, t, T, BH};  // (1, B, H): the same step for every t, no place
      auto step_rows = [&](int64_t s0, int64_t e0) {
        if (zht)
          lstm_bwd_rows<scalar_t, true>(s0, e0, BH, TBH, H, PBH, poff, g, tcp, cprev, dop, dm, rp, dhp, dcp, dp, vt,
                                        zht, zct, dsh);
        else
          lstm_bwd_rows<scalar_t, false>(s0, e0, BH, TBH, H, PBH, poff, g, tcp, cprev, dop, dm, rp, dhp, dcp, dp,
                                         vt, zht, zct, dsh);
      };
      block_rows(inner_parallel, b0, nb, H, step_rows);
      step_products<scalar_t>(dhm, dhm_lp, dp + poff, TBH, w3, 4, nb, H, nullptr, w3p);  // (4, nb, H_in): d(h(t-1) * m_k)
    }
    final_dh_range<scalar_t>(poff, poff + PBH, BH, PBH, poff, 4, dm, rp, dhp);
  };
  for_row_blocks(B, H, rows_run);
}

std::vector<Tensor> lstm_backward(Tensor dout, Tensor dhT, Tensor dcT, Tensor w_hh, Tensor rmask, Tensor cs,
                                  Tensor hm, Tensor gates, Tensor tcs, Tensor step, Tensor zh, Tensor zc,
                                  Tensor oshift) {
  const int64_t T = gates.size(0), B = gates.size(2), H = gates.size(3);
  Tensor w3 = w_hh.view({4, H, H});
  Tensor dh = dhT.clone(), dc = dcT.clone();
  Tensor dpre = pooled_empty({4, T, B, H}, gates.options());
  Tensor st = step.numel() ? step : Tensor();
  Tensor zht = zh.numel() ? zh : Tensor(), zct = zc.numel() ? zc : Tensor();
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "embdrop_lstm_backward", [&] {
    lstm_backward_loop<scalar_t>(dout, w3, rmask, st, zht, zct, cs, gates, tcs, dh, dc, dpre, shifts(oshift));
  });
  // dW_k = sum over t, b of dpre_k[t, b]^T (h(t-1) * m_k)[b]: one batched GEMM over all steps, on views.
  const auto wtype = w_hh.scalar_type();  // the GEMM's dtype and dW's (see the top of the file)
  Tensor dw = batched_product(dpre.view({4, T * B, H}).transpose(1, 2).to(wtype), hm.view({4, T * B, H}).to(wtype));
  return {dpre, dw.reshape({4 * H, H}), dh, dc};
}


}  // namespace embdrop
