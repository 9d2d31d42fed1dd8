// The batched matrix product of the fused CPU kernels: oneDNN's matmul where it is faster, ATen's bmm elsewhere.
//
// On the AMD EPYC (AVX-512) the products the recurrences need ran 1.2-1.6x faster through oneDNN's matmul than
// through ATen's bmm (MKL) at the larger shapes (an LSTM's input projection at (T*B, C, H) = (700, 650, 650), a
// step at (B, H) = (20, 650)), and slower at the smallest (a (32, 100) step: oneDNN's fixed cost per call);
// benchmarks/gemm.py measures it. torch reaches oneDNN's matmul itself only for bfloat16/float16 or when float32
// products may be rounded (float32_matmul_precision); here it runs in float32, and only float32 takes it.
//
// at::native::mkldnn_matmul is exported by libtorch_cpu but not a public API: it is declared weak here, so that a
// torch without it leaves the pointer null (the product then is ATen's) instead of failing to load the extension.
#include "common.h"

namespace at {
namespace native {
__attribute__((weak)) void mkldnn_matmul(const Tensor& mat1, const Tensor& mat2, const Tensor& result, float beta,
                                         float alpha);
}  // namespace native
}  // namespace at

namespace embdrop {

namespace {

// A (G, R, C) operand oneDNN reads in place: each matrix row- or column-major (any batch stride, 0 included).
bool plain(const Tensor& t) {
  if (t.dim() != 3) return false;
  const int64_t R = t.size(1), C = t.size(2);
  return (t.stride(2) == 1 && t.stride(1) >= std::max<int64_t>(C, 1)) ||
         (t.stride(1) == 1 && t.stride(2) >= std::max<int64_t>(R, 1));
}

// oneDNN's cost per call (primitive lookup, its threading) loses below about this many multiply-adds per call.
constexpr int64_t kOneDnnMacs = int64_t(1) << 23;

}  // namespace

bool onednn_gemm_available() {
  return &at::native::mkldnn_matmul != nullptr && at::hasMKLDNN() && at::globalContext().userEnabledMkldnn();
}

void bmm_into(Tensor& out, const Tensor& a, const Tensor& b) {
  const bool f32 = a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat && out.scalar_type() == at::kFloat;
  const int64_t macs = a.size(0) * a.size(1) * a.size(2) * b.size(2);
  if (f32 && macs >= kOneDnnMacs && out.is_contiguous() && plain(a) && plain(b) && onednn_gemm_available()) {
    at::native::mkldnn_matmul(a, b, out, 0.0f, 1.0f);
    return;
  }
  at::bmm_out(out, a, b);
}

Tensor batched_product(Tensor a, Tensor b) {
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0) && a.size(2) == b.size(1),
              "embdrop bmm: expected (G, M, K) and (G, K, N), got ", a.sizes(), " and ", b.sizes());
  Tensor out = at::empty({a.size(0), a.size(1), b.size(2)}, a.options());
  bmm_into(out, a, b);
  return out;
}

}  // namespace embdrop
