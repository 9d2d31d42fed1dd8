// The recurrences' per-step products on the kernel's own register-blocked GEMM, where it sums exactly as the library
// call it replaces.
//
// A step's products are small: (G, nb, H) x (G, H, H) with nb the rows of one thread's block, 16 x 100 x 100 per
// gate for the reviews LSTM. A library call costs more than its arithmetic there: for the four gates at
// (nb, H) = (16, 100) MKL's batched GEMM took 16.9 us a call and this code 9.5 us, a Python call's cost included;
// 66.0 against 56.6 us at (32, 200) (oneDNN's matmul), 203 against 187 us at (10, 650) (one thread of the AMD
// EPYC, AVX-512: python benchmarks/step_products.py).
//
// Each output entry is one chain of fused multiply-adds over k in order, from zero, as the libraries' kernels sum
// at these sizes. On the AMD EPYC (AVX-512) the results equal oneDNN's to the bit for N >= 2 and K <= 1024 (oneDNN
// sums K in blocks of 512, each block a chain of its own, added to the previous ones; the same is done here), and
// MKL's batched GEMM's for M >= 4 and 12 <= N, K <= 192. own_products() uses them only there, and only for a shape
// whose check (the two computed once on the same values, in the same threading) came out the same to the bit on
// the CPU at hand; the library runs everywhere else (MKL's smallest products, oneDNN's products of three K blocks
// and more), so that a training run's numbers do not change.
//
// The right-hand operand is read from a copy whose rows are padded with zeros to whole vectors (pad_columns, made
// once per sequence), so that every load is a full vector; the last vector's extra columns are not stored.
#include <map>
#include <mutex>

#include "common.h"

namespace embdrop {

namespace {

constexpr int kMaxNV = kLanes == 16 ? 4 : 2;  // vectors of columns a tile: AVX-512's 32 registers, AVX2's 16
constexpr int64_t kOneDnnKBlock = 512;  // oneDNN's K block (see the top of the file)

// Rows a tile for NV vectors: MR * NV accumulators, NV operand vectors and a broadcast within the registers.
template <int NV>
constexpr int tile_rows() {
  return NV == kMaxNV ? 6 : 8;
}

// c[i, :ncols] (=, or += with `add`) sum over k in [k0, k1) of a[i * lda + k] * b[k * ldb + (0 .. NV * kLanes)],
// for the tile's MR rows (c's rows ldc apart)
template <int MR, int NV>
__attribute__((noinline)) void tile(int64_t k0, int64_t k1, const float* __restrict__ a, int64_t lda,
                                    const float* __restrict__ b, int64_t ldb, float* __restrict__ c, int64_t ldc,
                                    int64_t ncols, bool add) {
  vfloat acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = vfloat{};
  for (int64_t k = k0; k < k1; ++k) {
    vfloat bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = load_v(b + k * ldb + v * kLanes);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const float s = a[i * lda + k];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = fma_v(s, bv[v], acc[i][v]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* cr = c + i * ldc;
    for (int v = 0; v < NV; ++v) {
      const int64_t n = std::min<int64_t>(kLanes, ncols - v * kLanes);  // columns of this vector to store
      if (n <= 0) break;
      const float* lanes = reinterpret_cast<const float*>(&acc[i][v]);
      if (add)
        for (int64_t j = 0; j < n; ++j) cr[v * kLanes + j] += lanes[j];
      else
        std::memcpy(cr + v * kLanes, lanes, sizeof(float) * n);
    }
  }
}

// All M rows of one panel of NV vectors: tiles of tile_rows<NV>() rows, then the rest in one smaller tile.
template <int NV>
void panel(int64_t M, int64_t k0, int64_t k1, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
           int64_t ldc, int64_t ncols, bool add) {
  constexpr int MR = tile_rows<NV>();
  int64_t i = 0;
  for (; i + MR <= M; i += MR) tile<MR, NV>(k0, k1, a + i * lda, lda, b, ldb, c + i * ldc, ldc, ncols, add);
  const float* ar = a + i * lda;
  float* cr = c + i * ldc;
  switch (M - i) {
    case 1: return tile<1, NV>(k0, k1, ar, lda, b, ldb, cr, ldc, ncols, add);
    case 2: return tile<2, NV>(k0, k1, ar, lda, b, ldb, cr, ldc, ncols, add);
    case 3: return tile<3, NV>(k0, k1, ar, lda, b, ldb, cr, ldc, ncols, add);
    case 4: return tile<4, NV>(k0, k1, ar, lda, b, ldb, cr, ldc, ncols, add);
    case 5: return tile<5, NV>(k0, k1, ar, lda, b, ldb, cr, ldc, ncols, add);
    case 6: return tile<6, NV>(k0, k1, ar, lda, b, ldb, cr, ldc, ncols, add);
    case 7: return tile<7, NV>(k0, k1, ar, lda, b, ldb, cr, ldc, ncols, add);
    default: return;  // none left (MR <= 8)
  }
}

void panel_any(int nv, int64_t M, int64_t k0, int64_t k1, const float* a, int64_t lda, const float* b, int64_t ldb,
               float* c, int64_t ldc, int64_t ncols, bool add) {
  switch (nv) {
    case 1: return panel<1>(M, k0, k1, a, lda, b, ldb, c, ldc, ncols, add);
    case 2: return panel<2>(M, k0, k1, a, lda, b, ldb, c, ldc, ncols, add);
#if defined(__AVX512F__)
    case 3: return panel<3>(M, k0, k1, a, lda, b, ldb, c, ldc, ncols, add);
    case 4: return panel<4>(M, k0, k1, a, lda, b, ldb, c, ldc, ncols, add);
#endif
    default: TORCH_CHECK(false, "embdrop own products: ", nv, " vectors a panel");
  }
}

}  // namespace

std::atomic<bool>& own_products_enabled() {
  static std::atomic<bool> on{true};
  return on;
}

void set_own_products(bool enabled) { own_products_enabled() = enabled; }

bool own_product_sizes(int64_t G, int64_t M, int64_t K, int64_t N) {
  if (!own_products_enabled() || M < 1 || K < 1 || N < 1 || K > 2 * kOneDnnKBlock) return false;
  if (G * M * K * N >= kOneDnnMacs) return N >= 2 && onednn_gemm_available();
  return M >= 4 && N >= 12 && N <= 192 && K <= 192 && mkl_batch_available();
}

namespace {

// The shapes checked so far, with whether the kernel's own sums came out as the library's: (what was checked, then
// its sizes, threads, whether in a parallel region), as the library's choice of kernel may depend on each.
std::mutex& checked_lock() {
  static std::mutex m;
  return m;
}
std::map<CheckKey, bool>& checked() {
  static std::map<CheckKey, bool> m;
  return m;
}
// shapes of one check past this many (lengths that vary call to call: a check costs about two of its products)
// keep the library's
constexpr size_t kMaxChecked = 256;

}  // namespace

bool checked_once(const CheckKey& key, const std::function<bool()>& same) {
  std::lock_guard<std::mutex> guard(checked_lock());
  auto it = checked().find(key);
  if (it == checked().end()) {
    size_t same_kind = 0;
    for (const auto& [k, _] : checked()) same_kind += k[0] == key[0];
    if (same_kind >= kMaxChecked) return false;
    it = checked().emplace(key, same()).first;
  }
  return it->second;
}

namespace {

bool same_products(int64_t G, int64_t M, int64_t K, int64_t N) {
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  Tensor a = at::empty({G, M, K}, opts), b = at::empty({G, K, N}, opts);
  fill_check_values(a, 0x9e3779b9u);
  fill_check_values(b, 0x7f4a7c15u);
  Tensor lib = at::empty({G, M, N}, opts), own = at::empty({G, M, N}, opts);
  const Tensor bp = pad_columns(b);
  gate_products(lib.data_ptr<float>(), a.data_ptr<float>(), M * K, b.data_ptr<float>(), G, M, K, N);
  own_gate_products(own.data_ptr<float>(), a.data_ptr<float>(), M * K, bp.data_ptr<float>(), bp.size(2), G, M, K,
                    N);
  return std::memcmp(lib.data_ptr<float>(), own.data_ptr<float>(), sizeof(float) * G * M * N) == 0;
}

}  // namespace

bool own_products(int64_t G, int64_t M, int64_t K, int64_t N) {
  // MKL's batched GEMM on several threads may split a gate's rows among them and sum the pieces as its smallest
  // products (G = 1, M = 5 on two threads differed): the own products replace it only where it runs on one thread,
  // in a row block's thread (a parallel region) or with one thread in all
  const bool mkl = G * M * K * N < kOneDnnMacs;
  if (!own_product_sizes(G, M, K, N) || (mkl && !at::in_parallel_region() && at::get_num_threads() != 1))
    return false;
  const CheckKey key{0, G, M, K, N, at::get_num_threads(), at::in_parallel_region() ? 1 : 0};
  thread_local CheckKey last{};  // a recurrence asks for one shape at every step: no lock after its first
  thread_local bool last_same = false;
  if (key == last) return last_same;
  last_same = checked_once(key, [&] { return same_products(G, M, K, N); });
  last = key;
  return last_same;
}

void fill_check_values(Tensor& t, uint32_t state) {
  float* q = t.data_ptr<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    state = state * 1664525u + 1013904223u;
    q[i] = static_cast<float>(static_cast<int32_t>(state >> 8) - (1 << 23)) / float(1 << 23);  // in [-1, 1)
  }
}

Tensor pad_columns(const Tensor& w) {
  TORCH_CHECK(w.dim() == 3 && w.scalar_type() == at::kFloat, "embdrop pad_columns: expected a (G, K, N) float32 "
              "tensor, got ", w.sizes(), " ", w.scalar_type());  // fmt: skip
  const int64_t N = w.size(2), NP = (N + kLanes - 1) / kLanes * kLanes;
  Tensor out = at::empty({w.size(0), w.size(1), NP}, w.options());  // one pass: each row copied, its tail zeroed
  out.narrow(2, 0, N).copy_(w);
  if (NP > N) out.narrow(2, N, NP - N).zero_();
  return out;
}

void own_gate_products(float* out, const float* a, int64_t a_gate, const float* bp, int64_t ldb, int64_t G,
                       int64_t M, int64_t K, int64_t N) {
  constexpr int64_t kPanelCols = kMaxNV * kLanes;
  const int64_t panels = (N + kPanelCols - 1) / kPanelCols;
  // tasks (gate, panel of columns): in parallel when called outside a parallel region (one row block), inline in a
  // row block's thread; a task of at least 2^15 multiply-adds, else fewer threads
  const int64_t macs = std::max<int64_t>(1, M * K * kPanelCols);
  at::parallel_for(0, G * panels, std::max<int64_t>(1, (int64_t(1) << 15) / macs), [&](int64_t s, int64_t e) {
    for (int64_t task = s; task < e; ++task) {
      const int64_t g = task / panels, n0 = (task % panels) * kPanelCols;
      const int64_t ncols = std::min(kPanelCols, N - n0);
      const int nv = static_cast<int>((ncols + kLanes - 1) / kLanes);
      const float* ag = a + g * a_gate;
      const float* bg = bp + g * K * ldb + n0;
      float* cg = out + g * M * N + n0;
      for (int64_t k0 = 0; k0 < K; k0 += kOneDnnKBlock)  // oneDNN's blocks of K, each summed on its own
        panel_any(nv, M, k0, std::min(K, k0 + kOneDnnKBlock), ag, K, bg, ldb, cg, N, ncols, k0 > 0);
    }
  });
}

}  // namespace embdrop
