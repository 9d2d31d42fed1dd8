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

// MKL's batched GEMM (group API), which torch's CPU wheels export: a recurrence's per-step product through it skips
// ATen's view ops and dispatch, 2-4 us a step (on the AMD EPYC, 1 to 2 threads; a step at (B, H) = (16, 100) takes
// 18 us). Weak as well: without MKL (ARM builds), the step takes ATen's bmm.
extern "C" __attribute__((weak)) void cblas_sgemm_batch(int layout, const int* transa, const int* transb,
                                                        const int* m, const int* n, const int* k, const float* alpha,
                                                        const float** a, const int* lda, const float** b,
                                                        const int* ldb, const float* beta, float** c, const int* ldc,
                                                        int group_count, const int* group_size);

namespace embdrop {

namespace {

// A (G, R, C) operand oneDNN reads in place: each matrix row- or column-major (any batch stride, 0 included).
bool plain(const Tensor& t) {
  if (t.dim() != 3) return false;
  const int64_t R = t.size(1), C = t.size(2);
  return (t.stride(2) == 1 && t.stride(1) >= std::max<int64_t>(C, 1)) ||
         (t.stride(1) == 1 && t.stride(2) >= std::max<int64_t>(R, 1));
}

}  // namespace

bool mkl_batch_available() { return &cblas_sgemm_batch != nullptr; }

bool onednn_gemm_available() {
  return &at::native::mkldnn_matmul != nullptr && at::hasMKLDNN() && at::globalContext().userEnabledMkldnn();
}

void bmm_into(Tensor& out, const Tensor& a, const Tensor& b) {
  const bool f32 = a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat && out.scalar_type() == at::kFloat;
  const int64_t macs = a.size(0) * a.size(1) * a.size(2) * b.size(2);
  if (f32 && macs >= kOneDnnMacs && out.is_contiguous() && plain(a) && plain(b) && onednn_gemm_available()) {
    if (a.stride(0) == 0 || b.stride(0) == 0) {
      // an operand shared by the batch (the input projection's unmasked input, expanded): oneDNN would first copy
      // it G times (its 3-d memory cannot overlap), so each product is one 2-d call on the shared matrix
      for (int64_t g = 0; g < a.size(0); ++g) at::native::mkldnn_matmul(a[g], b[g], out[g], 0.0f, 1.0f);
      return;
    }
    at::native::mkldnn_matmul(a, b, out, 0.0f, 1.0f);
    return;
  }
  at::bmm_out(out, a, b);
}

void gate_products(float* out, const float* a, int64_t a_gate, const float* b, int64_t G, int64_t M, int64_t K,
                   int64_t N, const float* bp, int64_t ldb) {
  if (bp && own_products(G, M, K, N)) {
    own_gate_products(out, a, a_gate, bp, ldb, G, M, K, N);
    return;
  }
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  const bool big = G * M * K * N >= kOneDnnMacs;
  constexpr int64_t kMaxGates = 8;
  if (!big && &cblas_sgemm_batch != nullptr && G <= kMaxGates && std::max({M, K, N}) < (int64_t(1) << 31)) {
    const float* as[kMaxGates];
    const float* bs[kMaxGates];
    float* cs[kMaxGates];
    for (int64_t g = 0; g < G; ++g) {
      as[g] = a + g * a_gate;
      bs[g] = b + g * K * N;
      cs[g] = out + g * M * N;
    }
    const int layout = 101, no_trans = 111, m = int(M), n = int(N), k = int(K), group = int(G);  // CblasRowMajor
    const float one = 1.0f, zero = 0.0f;
    cblas_sgemm_batch(layout, &no_trans, &no_trans, &m, &n, &k, &one, as, &k, bs, &n, &zero, cs, &n, 1, &group);
    return;
  }
  if (big && a_gate != M * K && onednn_gemm_available()) {
    // oneDNN's 3-d matmul would copy the gates a_gate apart into a new contiguous tensor (ATen's clone: an
    // allocation and a dispatch, ~8 us a call, 140 calls a training step at (64, 35, 200, 200)); the same copy
    // into this thread's scratch, then the same call on it: the same operands, the same bits
    thread_local std::vector<float> packed;
    if (packed.size() < size_t(G * M * K)) packed.resize(size_t(G * M * K));
    for (int64_t g = 0; g < G; ++g) std::memcpy(packed.data() + g * M * K, a + g * a_gate, sizeof(float) * M * K);
    a = packed.data();
    a_gate = M * K;
  }
  // (G, M, K) with gates a_gate apart, (G, K, N) and (G, M, N) contiguous: views of the caller's memory
  const Tensor av = at::from_blob(const_cast<float*>(a), {G, M, K}, {a_gate, K, 1}, opts);
  const Tensor bv = at::from_blob(const_cast<float*>(b), {G, K, N}, opts);
  Tensor ov = at::from_blob(out, {G, M, N}, opts);
  bmm_into(ov, av, bv);
}

namespace {

constexpr int kPanel = 4 * kLanes;  // a task's columns of W: 4 accumulators
// Kept units above which a step keeps the dense product: the kept-unit product reads (1 - p) of W_hh but through an
// index, MKL all of it in order; measured faster at p = 0.3 and 0.5 (benchmarks/recurrent.py --inference), slower
// with every unit kept (H = 650). The cut between is a choice, not a measured crossing.
constexpr double kKeptMax = 0.75;

// out[0 .. ncols) = sum_i a[idx[i]] * w[idx[i] * ldw + (0 .. ncols)] for ncols <= kPanel: NV vectors, then the
// last ncols % kLanes columns one by one
template <int NV>
__attribute__((noinline)) void kept_gemv(int64_t K, const float* __restrict__ a, const int32_t* __restrict__ idx,
                                         const float* __restrict__ w, int64_t ldw, float* __restrict__ out,
                                         int ncols) {
  vfloat acc[NV + 1] = {};
  const int rest = ncols - NV * kLanes;
  float* tail = reinterpret_cast<float*>(&acc[NV]);
  for (int64_t i = 0; i < K; ++i) {
    const float ai = a[idx[i]];
    const float* wr = w + int64_t(idx[i]) * ldw;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      acc[v] = fma_v(ai, load_v(wr + v * kLanes), acc[v]);
    }
    for (int j = 0; j < rest; ++j) tail[j] = std::fma(ai, wr[NV * kLanes + j], tail[j]);
  }
  std::memcpy(out, acc, ncols * sizeof(float));
}

void kept_gemv_any(int64_t K, const float* a, const int32_t* idx, const float* w, int64_t ldw, float* out,
                   int ncols) {
  switch (ncols / kLanes) {  // full vectors (ncols < kPanel: at most 3)
    case 0: return kept_gemv<0>(K, a, idx, w, ldw, out, ncols);
    case 1: return kept_gemv<1>(K, a, idx, w, ldw, out, ncols);
    case 2: return kept_gemv<2>(K, a, idx, w, ldw, out, ncols);
    case 3: return kept_gemv<3>(K, a, idx, w, ldw, out, ncols);
    default: return kept_gemv<4>(K, a, idx, w, ldw, out, ncols);
  }
}

template <typename scalar_t>
__attribute__((noinline)) void transpose_tile(int64_t H, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                                              const scalar_t* __restrict__ in, scalar_t* __restrict__ out) {
  for (int64_t j = j0; j < j1; ++j)
    for (int64_t i = i0; i < i1; ++i) out[j * H + i] = in[i * H + j];
}

}  // namespace

Tensor gates_transposed(const Tensor& w, int64_t G, int64_t H) {
  // ATen's copy of the transposed view runs through the matrix in one order, so that one side misses the cache
  // on every entry: 1.8 ms for (4, 650, 650) on one thread of the AMD EPYC; in 16 x 16 tiles, each written row by
  // row, 0.46 ms (32 x 32: 0.71 ms; reading rows and writing columns: 1.0-1.4 ms).
  constexpr int64_t kTile = 16;
  const Tensor wc = w.contiguous();
  Tensor out = pooled_empty({G, H, H}, w.options());
  const int64_t tiles = (H + kTile - 1) / kTile;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, w.scalar_type(), "embdrop_gates_transposed", [&] {
    const scalar_t* in = ptr<scalar_t>(wc);
    scalar_t* o = ptr<scalar_t>(out);
    for_rows(G * tiles, kTile * H, [&](int64_t s, int64_t e) {  // a row of tiles: kTile rows of W
      for (int64_t r = s; r < e; ++r) {
        const int64_t g = r / tiles, i0 = (r % tiles) * kTile, i1 = std::min(H, i0 + kTile);
        for (int64_t j0 = 0; j0 < H; j0 += kTile)
          transpose_tile<scalar_t>(H, i0, i1, j0, std::min(H, j0 + kTile), in + g * H * H, o + g * H * H);
      }
    });
  });
  return out;
}

KeptUnits kept_units(const float* rm, int64_t gate_stride, int64_t G, int64_t H) {
  KeptUnits ku;
  ku.idx.reserve(G * H);
  ku.start.push_back(0);
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t j = 0; j < H; ++j)
      if (rm[g * gate_stride + j] != 0.0f) ku.idx.push_back(static_cast<int32_t>(j));
    ku.start.push_back(static_cast<int64_t>(ku.idx.size()));
  }
  if (static_cast<double>(ku.idx.size()) > kKeptMax * static_cast<double>(G * H)) return KeptUnits{};
  return ku;
}

void kept_unit_products(float* out, const float* a, int64_t a_gate, const float* w, int64_t G, int64_t K, int64_t N,
                        const KeptUnits& ku) {
  // tasks (gate, panel of kPanel columns), split into contiguous ranges: each thread reads the same part of W_hh
  // every step, which stays in its own cache; a range of at least 2^15 multiply-adds, else one thread
  const int64_t panels = (N + kPanel - 1) / kPanel;
  const int64_t macs = std::max<int64_t>(1, ku.idx.size() * kPanel / std::max<int64_t>(G, 1));  // a task's
  at::parallel_for(0, G * panels, std::max<int64_t>(1, (int64_t(1) << 15) / macs), [&](int64_t s, int64_t e) {
    for (int64_t task = s; task < e; ++task) {
      const int64_t g = task / panels, n0 = (task % panels) * kPanel;
      const int64_t k0 = ku.start[g], nk = ku.start[g + 1] - k0;
      kept_gemv_any(nk, a + g * a_gate, ku.idx.data() + k0, w + g * K * N + n0, N, out + g * N + n0,
                static_cast<int>(std::min<int64_t>(kPanel, N - n0)));
    }
  });
}

Tensor batched_product(Tensor a, Tensor b) {
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0) && a.size(2) == b.size(1),
              "embdrop bmm: expected (G, M, K) and (G, K, N), got ", a.sizes(), " and ", b.sizes());
  Tensor out = pooled_empty({a.size(0), a.size(1), b.size(2)}, a.options());
  bmm_into(out, a, b);
  return out;
}

}  // namespace embdrop
