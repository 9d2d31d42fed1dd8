// Fused CPU recurrences for embdrop.LSTM / embdrop.GRU with per-gate recurrent dropout masks.
//
// Layouts: xw (G, T, B, H) input projections per gate (a view per step, no copies); w_hh (G*H, H); rmask
// (G, B, H), already scaled by 1/(1-p); h0, c0 (B, H); step (T, B) bool, or an empty tensor when no step is
// padded. LSTM gates are ordered i, f, o, g here; GRU gates r, z, n.
//
// Per step the forward does one batched GEMM for the G masked recurrent products, ATen's vectorised sigmoid/tanh
// and plain arithmetic passes; the masked states h(t-1) * m_k are written once into a (G, T, B, H) buffer that the
// backward reuses for the weight gradient, which is then one batched GEMM over all steps on views (no copies).
// The backward needs no transcendental (activations are saved) and one batched GEMM per step.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <vector>

using at::Tensor;

namespace {

constexpr int64_t kGrain = 1 << 15;  // element-wise passes below this size run on the calling thread

template <typename F>
inline void for_each(int64_t n, const F& f) {
  at::parallel_for(0, n, kGrain, [&](int64_t s, int64_t e) {
    for (int64_t j = s; j < e; ++j) f(j);
  });
}

// ------------------------------------------------------------------------------------------------------------ LSTM
template <typename scalar_t>
void lstm_forward_loop(const Tensor& xw, const Tensor& wt, const Tensor& rmask, const Tensor& step, Tensor& hs,
                       Tensor& cs, Tensor& hm, Tensor& gates, Tensor& tcs, Tensor& out) {
  const int64_t T = xw.size(1), B = xw.size(2), H = xw.size(3), BH = B * H;
  Tensor pre = at::empty({4, B, H}, xw.options());
  const bool* sp = step.defined() ? step.data_ptr<bool>() : nullptr;
  for (int64_t t = 0; t < T; ++t) {
    Tensor hmt = hm.select(1, t);                          // (4, B, H) view, saved for the weight gradient
    at::mul_out(hmt, rmask, hs[t].unsqueeze(0));           // h(t-1) * m_k
    at::baddbmm_out(pre, xw.select(1, t), hmt, wt);        // x-part + (h * m_k) @ W_k^T
    Tensor g = gates[t];
    Tensor ifo = g.narrow(0, 0, 3);
    at::sigmoid_out(ifo, pre.narrow(0, 0, 3));             // i, f, o
    Tensor gg = g[3];
    at::tanh_out(gg, pre[3]);                              // g
    const scalar_t* gp = g.data_ptr<scalar_t>();
    const scalar_t* cprev = cs[t].data_ptr<scalar_t>();
    scalar_t* cnew = cs[t + 1].data_ptr<scalar_t>();
    for_each(BH, [&](int64_t j) { cnew[j] = gp[BH + j] * cprev[j] + gp[j] * gp[3 * BH + j]; });
    Tensor tc = tcs[t];
    at::tanh_out(tc, cs[t + 1]);
    const scalar_t* tcp = tc.data_ptr<scalar_t>();
    const scalar_t* hprev = hs[t].data_ptr<scalar_t>();
    scalar_t* hnew = hs[t + 1].data_ptr<scalar_t>();
    scalar_t* op = out[t].data_ptr<scalar_t>();
    if (!sp) {
      for_each(BH, [&](int64_t j) { op[j] = hnew[j] = gp[2 * BH + j] * tcp[j]; });
    } else {
      const bool* vt = sp + t * B;
      for_each(BH, [&](int64_t j) {
        const scalar_t hc = gp[2 * BH + j] * tcp[j];
        const bool v = vt[j / H];
        hnew[j] = v ? hc : hprev[j];
        op[j] = v ? hc : scalar_t(0);
        if (!v) cnew[j] = cprev[j];
      });
    }
  }
}

std::vector<Tensor> lstm_forward(Tensor xw, Tensor w_hh, Tensor rmask, Tensor h0, Tensor c0, Tensor step) {
  const int64_t T = xw.size(1), B = xw.size(2), H = xw.size(3);
  auto opts = xw.options();
  Tensor wt = w_hh.view({4, H, H}).transpose(1, 2);  // (4, H_in, H_out)
  Tensor hs = at::empty({T + 1, B, H}, opts), cs = at::empty({T + 1, B, H}, opts);
  hs[0].copy_(h0);
  cs[0].copy_(c0);
  Tensor hm = at::empty({4, T, B, H}, opts);
  Tensor gates = at::empty({T, 4, B, H}, opts), tcs = at::empty({T, B, H}, opts), out = at::empty({T, B, H}, opts);
  Tensor st = step.numel() ? step : Tensor();
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "embdrop_lstm_forward", [&] {
    lstm_forward_loop<scalar_t>(xw, wt, rmask, st, hs, cs, hm, gates, tcs, out);
  });
  return {out, hs, cs, hm, gates, tcs};
}

template <typename scalar_t>
void lstm_backward_loop(const Tensor& dout, const Tensor& w3, const Tensor& rmask, const Tensor& step,
                        const Tensor& cs, const Tensor& gates, const Tensor& tcs, Tensor& dh, Tensor& dc,
                        Tensor& dpre) {
  const int64_t T = gates.size(0), B = gates.size(2), H = gates.size(3), BH = B * H, TBH = T * BH;
  Tensor dhm = at::empty({4, B, H}, dh.options());
  const bool* sp = step.defined() ? step.data_ptr<bool>() : nullptr;
  scalar_t* dhp = dh.data_ptr<scalar_t>();
  scalar_t* dcp = dc.data_ptr<scalar_t>();
  const scalar_t* rp = rmask.data_ptr<scalar_t>();
  scalar_t* dpre0 = dpre.data_ptr<scalar_t>();
  for (int64_t t = T - 1; t >= 0; --t) {
    const scalar_t* gp = gates[t].data_ptr<scalar_t>();
    const scalar_t* tcp = tcs[t].data_ptr<scalar_t>();
    const scalar_t* cprev = cs[t].data_ptr<scalar_t>();
    const scalar_t* dop = dout[t].data_ptr<scalar_t>();
    scalar_t* dp = dpre0 + t * BH;  // gate k of step t at dp + k * TBH
    const bool* vt = sp ? sp + t * B : nullptr;
    auto cell = [&](int64_t j, bool v) {
      const scalar_t i = gp[j], f = gp[BH + j], o = gp[2 * BH + j], g = gp[3 * BH + j], tc = tcp[j];
      const scalar_t dhc = v ? dhp[j] + dop[j] : scalar_t(0);
      scalar_t dcc = v ? dcp[j] : scalar_t(0);
      dcc += dhc * o * (scalar_t(1) - tc * tc);
      dp[j] = dcc * g * i * (scalar_t(1) - i);                // d pre_i
      dp[TBH + j] = dcc * cprev[j] * f * (scalar_t(1) - f);   // d pre_f
      dp[2 * TBH + j] = dhc * tc * o * (scalar_t(1) - o);     // d pre_o
      dp[3 * TBH + j] = dcc * i * (scalar_t(1) - g * g);      // d pre_g
      if (v) {
        dcp[j] = dcc * f;
        dhp[j] = scalar_t(0);
      }  // a padded step passes dh and dc on unchanged
    };
    if (!vt) {
      for_each(BH, [&](int64_t j) { cell(j, true); });
    } else {
      for_each(BH, [&](int64_t j) { cell(j, vt[j / H]); });
    }
    at::bmm_out(dhm, dpre.select(1, t), w3);  // (4, B, H_in): d(h * m_k) for each gate
    const scalar_t* dmp = dhm.data_ptr<scalar_t>();
    for_each(BH, [&](int64_t j) {
      dhp[j] += dmp[j] * rp[j] + dmp[BH + j] * rp[BH + j] + dmp[2 * BH + j] * rp[2 * BH + j] +
                dmp[3 * BH + j] * rp[3 * BH + j];
    });
  }
}

std::vector<Tensor> lstm_backward(Tensor dout, Tensor dhT, Tensor dcT, Tensor w_hh, Tensor rmask, Tensor cs,
                                  Tensor hm, Tensor gates, Tensor tcs, Tensor step) {
  const int64_t T = gates.size(0), B = gates.size(2), H = gates.size(3);
  Tensor w3 = w_hh.view({4, H, H});
  Tensor dh = dhT.clone(), dc = dcT.clone();
  Tensor dpre = at::empty({4, T, B, H}, gates.options());
  Tensor st = step.numel() ? step : Tensor();
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "embdrop_lstm_backward", [&] {
    lstm_backward_loop<scalar_t>(dout, w3, rmask, st, cs, gates, tcs, dh, dc, dpre);
  });
  // dW_k = sum over t, b of dpre_k[t, b]^T (h(t-1) * m_k)[b]: one batched GEMM over all steps, on views.
  Tensor dw = at::bmm(dpre.view({4, T * B, H}).transpose(1, 2), hm.view({4, T * B, H}));
  return {dpre, dw.reshape({4 * H, H}), dh, dc};
}

// ------------------------------------------------------------------------------------------------------------- GRU
template <typename scalar_t>
void gru_forward_loop(const Tensor& xw, const Tensor& wt, const Tensor& bias, const Tensor& rmask,
                      const Tensor& step, Tensor& hs, Tensor& hm, Tensor& gates, Tensor& hpn, Tensor& out) {
  const int64_t T = xw.size(1), B = xw.size(2), H = xw.size(3), BH = B * H, TBH = T * BH;
  Tensor hp = at::empty({3, B, H}, xw.options());
  const bool* sp = step.defined() ? step.data_ptr<bool>() : nullptr;
  const scalar_t* x0 = xw.data_ptr<scalar_t>();
  for (int64_t t = 0; t < T; ++t) {
    Tensor hmt = hm.select(1, t);
    at::mul_out(hmt, rmask, hs[t].unsqueeze(0));
    if (bias.defined()) {
      at::baddbmm_out(hp, bias, hmt, wt);  // (3, B, H): (h * m_k) @ U_k^T + b_hk
    } else {
      at::bmm_out(hp, hmt, wt);
    }
    Tensor g = gates[t];
    Tensor rz = g.narrow(0, 0, 2);
    at::add_out(rz, xw.select(1, t).narrow(0, 0, 2), hp.narrow(0, 0, 2));
    at::sigmoid_(rz);  // r, z
    const scalar_t* gp = g.data_ptr<scalar_t>();
    const scalar_t* xn = x0 + 2 * TBH + t * BH;
    const scalar_t* hpp = hp.data_ptr<scalar_t>();
    scalar_t* np = g[2].data_ptr<scalar_t>();
    scalar_t* hnp = hpn[t].data_ptr<scalar_t>();
    for_each(BH, [&](int64_t j) {
      np[j] = xn[j] + gp[j] * hpp[2 * BH + j];
      hnp[j] = hpp[2 * BH + j];
    });
    Tensor n = g[2];
    at::tanh_(n);
    const scalar_t* hprev = hs[t].data_ptr<scalar_t>();
    scalar_t* hnew = hs[t + 1].data_ptr<scalar_t>();
    scalar_t* op = out[t].data_ptr<scalar_t>();
    if (!sp) {
      for_each(BH, [&](int64_t j) {
        const scalar_t z = gp[BH + j];
        op[j] = hnew[j] = (scalar_t(1) - z) * np[j] + z * hprev[j];
      });
    } else {
      const bool* vt = sp + t * B;
      for_each(BH, [&](int64_t j) {
        const scalar_t z = gp[BH + j];
        const scalar_t hc = (scalar_t(1) - z) * np[j] + z * hprev[j];
        const bool v = vt[j / H];
        hnew[j] = v ? hc : hprev[j];
        op[j] = v ? hc : scalar_t(0);
      });
    }
  }
}

std::vector<Tensor> gru_forward(Tensor xw, Tensor w_hh, Tensor b_hh, Tensor rmask, Tensor h0, Tensor step) {
  const int64_t T = xw.size(1), B = xw.size(2), H = xw.size(3);
  auto opts = xw.options();
  Tensor wt = w_hh.view({3, H, H}).transpose(1, 2);
  Tensor bias = b_hh.numel() ? b_hh.view({3, 1, H}).expand({3, B, H}) : Tensor();
  Tensor hs = at::empty({T + 1, B, H}, opts);
  hs[0].copy_(h0);
  Tensor hm = at::empty({3, T, B, H}, opts);
  Tensor gates = at::empty({T, 3, B, H}, opts), hpn = at::empty({T, B, H}, opts), out = at::empty({T, B, H}, opts);
  Tensor st = step.numel() ? step : Tensor();
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "embdrop_gru_forward", [&] {
    gru_forward_loop<scalar_t>(xw, wt, bias, rmask, st, hs, hm, gates, hpn, out);
  });
  return {out, hs, hm, gates, hpn};
}

template <typename scalar_t>
void gru_backward_loop(const Tensor& dout, const Tensor& w3, const Tensor& rmask, const Tensor& step,
                       const Tensor& hs, const Tensor& gates, const Tensor& hpn, Tensor& dh, Tensor& dxw,
                       Tensor& dhp) {
  const int64_t T = gates.size(0), B = gates.size(2), H = gates.size(3), BH = B * H, TBH = T * BH;
  Tensor dhm = at::empty({3, B, H}, dh.options());
  const bool* sp = step.defined() ? step.data_ptr<bool>() : nullptr;
  scalar_t* dhptr = dh.data_ptr<scalar_t>();
  const scalar_t* rp = rmask.data_ptr<scalar_t>();
  scalar_t* dx0 = dxw.data_ptr<scalar_t>();
  scalar_t* dr0 = dhp.data_ptr<scalar_t>();
  for (int64_t t = T - 1; t >= 0; --t) {
    const scalar_t* gp = gates[t].data_ptr<scalar_t>();
    const scalar_t* hnp = hpn[t].data_ptr<scalar_t>();
    const scalar_t* hprev = hs[t].data_ptr<scalar_t>();
    const scalar_t* dop = dout[t].data_ptr<scalar_t>();
    scalar_t* dx = dx0 + t * BH;
    scalar_t* dr = dr0 + t * BH;
    const bool* vt = sp ? sp + t * B : nullptr;
    auto cell = [&](int64_t j, bool v) {
      const scalar_t r = gp[j], z = gp[BH + j], n = gp[2 * BH + j];
      const scalar_t dhc = v ? dhptr[j] + dop[j] : scalar_t(0);
      const scalar_t dnp = dhc * (scalar_t(1) - z) * (scalar_t(1) - n * n);
      const scalar_t drp = dnp * hnp[j] * r * (scalar_t(1) - r);
      const scalar_t dzp = dhc * (hprev[j] - n) * z * (scalar_t(1) - z);
      dx[j] = drp;
      dx[TBH + j] = dzp;
      dx[2 * TBH + j] = dnp;
      dr[j] = drp;
      dr[TBH + j] = dzp;
      dr[2 * TBH + j] = dnp * r;
      if (v) dhptr[j] = dhc * z;  // the direct path through z * h(t-1); a padded step passes dh on
    };
    if (!vt) {
      for_each(BH, [&](int64_t j) { cell(j, true); });
    } else {
      for_each(BH, [&](int64_t j) { cell(j, vt[j / H]); });
    }
    at::bmm_out(dhm, dhp.select(1, t), w3);
    const scalar_t* dmp = dhm.data_ptr<scalar_t>();
    for_each(BH, [&](int64_t j) {
      dhptr[j] += dmp[j] * rp[j] + dmp[BH + j] * rp[BH + j] + dmp[2 * BH + j] * rp[2 * BH + j];
    });
  }
}

std::vector<Tensor> gru_backward(Tensor dout, Tensor dhT, Tensor w_hh, Tensor rmask, Tensor hs, Tensor hm,
                                 Tensor gates, Tensor hpn, Tensor step) {
  const int64_t T = gates.size(0), B = gates.size(2), H = gates.size(3);
  Tensor w3 = w_hh.view({3, H, H});
  Tensor dh = dhT.clone();
  Tensor dxw = at::empty({3, T, B, H}, gates.options()), dhp = at::empty({3, T, B, H}, gates.options());
  Tensor st = step.numel() ? step : Tensor();
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "embdrop_gru_backward", [&] {
    gru_backward_loop<scalar_t>(dout, w3, rmask, st, hs, gates, hpn, dh, dxw, dhp);
  });
  Tensor dw = at::bmm(dhp.view({3, T * B, H}).transpose(1, 2), hm.view({3, T * B, H}));
  Tensor db = dhp.sum({1, 2}).reshape({3 * H});
  return {dxw, dw.reshape({3 * H, H}), db, dh};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lstm_forward", &lstm_forward);
  m.def("lstm_backward", &lstm_backward);
  m.def("gru_forward", &gru_forward);
  m.def("gru_backward", &gru_backward);
}
