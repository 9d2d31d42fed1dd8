"""A GEMM that masks its input as it loads it, against MKL's batched product, at the recurrent shapes.

Issue 38 asked whether the per-gate recurrent products are slow because of the GEMM (MKL may not take its AVX-512
path on AMD) and whether a product that applies the gate's mask while it loads h, so that no masked copy of h is
written, would beat it. Per step an LSTM with per-gate recurrent masks needs out_g = (h * m_g) @ W_g for four
gates, (B, H) x (H, H) each. This script times, per shape, interleaved, medians of 15 rounds of 200 calls:

- ``mkl bmm (masked copy given)``: ``torch.bmm`` of the four masked copies, written beforehand (the kernel's way:
  its point-wise pass writes them for the next step);
- ``mkl bmm + mask``: the copies written, then the product;
- ``mkl mm unmasked``: one (B, H) x (H, 4H) product of h (what an LSTM without masks runs);
- ``fused mask``: a plain register-blocked kernel (4 rows x 32 columns, GCC vector extensions, built for this CPU
  with -march=native, threads over row and column blocks) that multiplies h by the mask as it loads it.

and prints MKL's rate (GFLOP/s) for the batched product. Built with torch.utils.cpp_extension on first run.
Run: python benchmarks/masked_product.py
"""

from __future__ import annotations

import statistics
import time

import torch
from torch.utils.cpp_extension import load_inline

SHAPES = [(32, 100), (64, 200), (20, 650), (128, 256)]  # (B, H) of benchmarks/recurrent.py's four shapes
SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
typedef float v16 __attribute__((vector_size(64)));
static inline v16 ld(const float* p) { v16 v; __builtin_memcpy(&v, p, 64); return v; }
static inline void st(float* p, v16 v) { __builtin_memcpy(p, &v, 64); }
// out (G, B, NP) = (h * m_g) (B, K) @ wt_g (K, NP), NP a multiple of 32 (zero-padded weights)
void masked_bmm(torch::Tensor h, torch::Tensor m, torch::Tensor wt, torch::Tensor out) {
  const int64_t G = wt.size(0), K = wt.size(1), NP = wt.size(2), B = h.size(0);
  const float* hp = h.data_ptr<float>(); const float* mp = m.data_ptr<float>();
  const float* wp = wt.data_ptr<float>(); float* op = out.data_ptr<float>();
  const int64_t RB = 4, CB = 32;
  const int64_t nrb = (B + RB - 1) / RB, ncb = NP / CB;
  at::parallel_for(0, G * nrb * ncb, 1, [&](int64_t s, int64_t e) {
    for (int64_t task = s; task < e; ++task) {
      const int64_t g = task / (nrb * ncb), rem = task % (nrb * ncb), rb = rem / ncb, cb = rem % ncb;
      const int64_t b0 = rb * RB, j0 = cb * CB, nr = std::min(RB, B - b0);
      v16 acc[4][2] = {};
      const float* w = wp + g * K * NP + j0;
      const float* mg = mp + g * B * K;
      if (nr == 4) {
        for (int64_t k = 0; k < K; ++k) {
          const v16 w0 = ld(w + k * NP), w1 = ld(w + k * NP + 16);
          for (int r = 0; r < 4; ++r) {
            const float a = hp[(b0 + r) * K + k] * mg[(b0 + r) * K + k];
            acc[r][0] += a * w0; acc[r][1] += a * w1;
          }
        }
      } else {
        for (int64_t k = 0; k < K; ++k) {
          const v16 w0 = ld(w + k * NP), w1 = ld(w + k * NP + 16);
          for (int r = 0; r < nr; ++r) {
            const float a = hp[(b0 + r) * K + k] * mg[(b0 + r) * K + k];
            acc[r][0] += a * w0; acc[r][1] += a * w1;
          }
        }
      }
      for (int r = 0; r < nr; ++r) {
        st(op + (g * B + b0 + r) * NP + j0, acc[r][0]);
        st(op + (g * B + b0 + r) * NP + j0 + 16, acc[r][1]);
      }
    }
  });
}
"""


def run(mod, B: int, H: int) -> None:
    G, K = 4, H
    NP = (H + 31) // 32 * 32
    h = torch.randn(B, K)
    m = (torch.rand(G, B, K) > 0.5).float() * 2
    w = torch.randn(G, K, H)
    wt = torch.zeros(G, K, NP)
    wt[:, :, :H] = w
    out = torch.empty(G, B, NP)
    a = h.unsqueeze(0) * m
    ref = torch.bmm(a, w)
    mod.masked_bmm(h, m, wt, out)
    err = (out[:, :, :H] - ref).abs().max().item()
    w2 = torch.randn(K, 4 * H)
    fns = {
        "mkl bmm (masked copy given)": lambda: torch.bmm(a, w, out=ref),
        "mkl bmm + mask": lambda: torch.bmm(h.unsqueeze(0) * m, w),
        "mkl mm unmasked": lambda: torch.mm(h, w2),
        "fused mask": lambda: mod.masked_bmm(h, m, wt, out),
    }
    res: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(15):
        for k, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(200):
                f()
            res[k].append((time.perf_counter() - t0) / 200 * 1e6)
    med = {k: statistics.median(v) for k, v in res.items()}
    rate = G * B * H * K * 2 / med["mkl bmm (masked copy given)"] / 1e3
    cells = " | ".join(f"{v:.1f}" for v in med.values())
    ratio = med["mkl bmm + mask"] / med["fused mask"]
    print(f"| {B}, {H} | {cells} | {rate:.0f} | {ratio:.2f}x | {err:.0e} |", flush=True)


def main() -> None:
    flags = ["-O3", "-march=native", "-fopenmp"]
    mod = load_inline("embdrop_masked_product", cpp_sources=SOURCE, functions=["masked_bmm"], extra_cflags=flags,
                      extra_ldflags=["-fopenmp"])  # fmt: skip
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; times in us per call")
    print("| B, H | mkl bmm (masked copy given) | mkl bmm + mask | mkl mm unmasked | fused mask | MKL GFLOP/s | "
          "fused mask against bmm + mask | max error |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for B, H in SHAPES:
        run(mod, B, H)


if __name__ == "__main__":
    main()
