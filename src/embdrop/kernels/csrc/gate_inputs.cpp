// The input projection's operand with a per-gate input mask: x (B, T, C) turned time-first and multiplied by each
// gate's mask, (G, T, B, C), in one pass (torch's ops took two: a transposed copy, then a broadcast product, and a
// new (G, T, B, C) tensor each call, whose first touch page-faults). Its backward sums the gates' gradients times
// their masks into (B, T, C), again in one pass.
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

}  // namespace

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
