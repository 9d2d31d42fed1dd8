// ------------------------------------------------------------------------------------------ embedding dropout
// The lookup and the per-position scale of embedding dropout in one pass, forward and backward; the per-word-type mask.
#include "common.h"

namespace embdrop {

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


}  // namespace embdrop
