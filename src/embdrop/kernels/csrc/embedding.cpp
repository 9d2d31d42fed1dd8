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
  const int64_t N = ids.numel();
  bool bad = V < 0;  // an OR over all ids (a loop the compiler vectorises), then the first bad one for the message
  for (int64_t n = 0; n < N; ++n) bad |= uint64_t(id[n]) >= uint64_t(V);
  for (int64_t n = 0; bad && n < N; ++n) {
    TORCH_CHECK_INDEX(id[n] >= 0 && id[n] < V, "Invalid value for argument 'ids': expected ids in [0, ", V,
                      "). Received: ", id[n]);
  }
  return id;
}

// The per-position factor of embedding dropout, read from a (N,) tensor of scales ...
template <typename scalar_t>
struct TensorScale {
  const scalar_t* sc;
  scalar_t operator()(int64_t n, int64_t) const { return sc[n]; }
};

// ... or computed where it is used from the key of word_keep's hashed mask (the same bits), so that no (N,) scale
// is drawn, written or saved: position n reads entry (n / T) * V + id (T = 0: id); padding ids get 1.
template <typename scalar_t>
struct HashedScale {
  int64_t T, V, pad;
  uint32_t s0, s1;
  uint64_t threshold;
  scalar_t kept;
  scalar_t operator()(int64_t n, int64_t id) const {
    if (id == pad) return scalar_t(1);
    const uint32_t i = static_cast<uint32_t>(T > 0 ? (n / T) * V + id : id);
    return static_cast<uint64_t>(mix32(mix32(i ^ s0) + s1)) < threshold ? kept : scalar_t(0);
  }
};

template <typename scalar_t>
HashedScale<scalar_t> hashed_scale_of(const std::vector<int64_t>& key, double value) {
  // key: {T, V, threshold, seed, padding_idx}
  const uint64_t seed = static_cast<uint64_t>(key[3]);
  return {key[0], key[1], key[4], static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
          static_cast<uint64_t>(key[2]), static_cast<scalar_t>(value)};
}

// out[n, :] = weight[ids[n], :] * f(n): the lookup and the mask in one pass over the (N, E) output.
template <typename scalar_t, typename F>
Tensor lookup_scaled(const Tensor& weight, const int64_t* id, int64_t N, F f) {
  const int64_t E = weight.size(1);
  Tensor out = pooled_empty({N, E}, weight.options());  // a step's new (N, E) without its page faults (pool.cpp)
  const scalar_t* w = ptr<scalar_t>(weight);
  scalar_t* o = ptr<scalar_t>(out);
  at::parallel_for(0, N, std::max<int64_t>(1, kGrain / std::max<int64_t>(E, 1)), [&](int64_t s, int64_t e) {
    for (int64_t n = s; n < e; ++n) {
      const scalar_t* __restrict__ row = w + id[n] * E;
      scalar_t* __restrict__ dst = o + n * E;
      const scalar_t factor = f(n, id[n]);
      for (int64_t j = 0; j < E; ++j) dst[j] = row[j] * factor;
    }
  });
  return out;
}

// The weight's dense gradient (V, E): row ids[n] gathers grad[n, :] * f(n); padding ids get none. Threads split
// the columns, so that repeated ids never race.
template <typename scalar_t, typename F>
Tensor gather_dense(const Tensor& grad, const int64_t* id, int64_t N, int64_t V, int64_t padding_idx, F f) {
  const int64_t E = grad.size(1);
  Tensor gw = at::zeros({V, E}, grad.options());
  const scalar_t* g = ptr<scalar_t>(grad);
  scalar_t* o = ptr<scalar_t>(gw);
  at::parallel_for(0, E, 16, [&](int64_t c0, int64_t c1) {
    for (int64_t n = 0; n < N; ++n) {
      if (id[n] == padding_idx) continue;
      const scalar_t* __restrict__ src = g + n * E;
      scalar_t* __restrict__ dst = o + id[n] * E;
      const scalar_t factor = f(n, id[n]);
      for (int64_t j = c0; j < c1; ++j) dst[j] += src[j] * factor;
    }
  });
  return gw;
}

// The weight's sparse gradient, as nn.Embedding(sparse=True) gives it: indices ids (1, N'), values grad[n, :] *
// f(n) (N', E), padding positions left out, in one pass.
template <typename scalar_t, typename F>
Tensor gather_sparse(const Tensor& grad, const Tensor& ids, const int64_t* id, int64_t V, int64_t padding_idx, F f) {
  const int64_t N = ids.numel(), E = grad.size(1);
  Tensor rows = ids.view({1, N});  // no padding id: the ids themselves
  std::vector<int64_t> src_of;     // with padding: the positions kept, in order
  bool all = true;
  if (padding_idx >= 0) {
    for (int64_t n = 0; n < N; ++n)
      if (id[n] != padding_idx) src_of.push_back(n);
    all = static_cast<int64_t>(src_of.size()) == N;
  }
  const int64_t kept = all ? N : static_cast<int64_t>(src_of.size());
  if (!all) {
    rows = at::empty({1, kept}, ids.options());
    int64_t* r = rows.data_ptr<int64_t>();
    for (int64_t k = 0; k < kept; ++k) r[k] = id[src_of[k]];
  }
  Tensor values = pooled_empty({kept, E}, grad.options());  // as the forward's output
  const scalar_t* g = ptr<scalar_t>(grad);
  scalar_t* o = ptr<scalar_t>(values);
  at::parallel_for(0, kept, std::max<int64_t>(1, kGrain / std::max<int64_t>(E, 1)), [&](int64_t s, int64_t e) {
    for (int64_t k = s; k < e; ++k) {
      const int64_t n = all ? k : src_of[k];
      const scalar_t* __restrict__ src = g + n * E;
      scalar_t* __restrict__ dst = o + k * E;
      const scalar_t factor = f(n, id[n]);
      for (int64_t j = 0; j < E; ++j) dst[j] = src[j] * factor;
    }
  });
  return at::_sparse_coo_tensor_unsafe(rows, values, {V, E}, grad.options().layout(at::kSparse));
}

Tensor embedding_scaled(Tensor weight, Tensor ids, Tensor scale) {
  const int64_t N = ids.numel(), V = weight.size(0);
  TORCH_CHECK(scale.is_contiguous() && weight.is_contiguous() && scale.numel() == N &&
                  scale.scalar_type() == weight.scalar_type(),
              "embedding_scaled: contiguous weight (V, E) and scale (N,) of weight's dtype expected");
  const int64_t* id = checked_ids(ids, V);
  Tensor out;
  AT_DISPATCH_FLOATING_TYPES(weight.scalar_type(), "embdrop_embedding_scaled", [&] {
    out = lookup_scaled<scalar_t>(weight, id, N, TensorScale<scalar_t>{ptr<scalar_t>(scale)});
  });
  return out;
}

// key: {T, V, threshold, seed, padding_idx} of word_keep's mask; value: the kept positions' factor.
Tensor embedding_hashed(Tensor weight, Tensor ids, std::vector<int64_t> key, double value) {
  TORCH_CHECK(weight.is_contiguous() && key.size() == 5, "embedding_hashed: contiguous weight and a 5-part key");
  const int64_t N = ids.numel();
  const int64_t* id = checked_ids(ids, weight.size(0));
  Tensor out;
  AT_DISPATCH_FLOATING_TYPES(weight.scalar_type(), "embdrop_embedding_hashed", [&] {
    out = lookup_scaled<scalar_t>(weight, id, N, hashed_scale_of<scalar_t>(key, value));
  });
  return out;
}

static void check_backward(const Tensor& grad, const Tensor& ids) {
  TORCH_CHECK(grad.is_contiguous() && ids.is_contiguous() && grad.dim() == 2 && grad.size(0) == ids.numel(),
              "embedding backward: contiguous grad (N, E) and ids (N,) expected");
}

// The weight's gradient for embedding_scaled: dense (V, E) or, with sparse, nn.Embedding(sparse=True)'s form (the
// scaled values and the padding left out in one pass).
Tensor embedding_scaled_backward(Tensor grad, Tensor ids, Tensor scale, int64_t V, int64_t padding_idx, bool sparse) {
  check_backward(grad, ids);
  TORCH_CHECK(scale.is_contiguous() && scale.numel() == ids.numel() && scale.scalar_type() == grad.scalar_type(),
              "embedding_scaled_backward: contiguous scale (N,) of grad's dtype expected");
  const int64_t* id = checked_ids(ids, V);
  Tensor gw;
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "embdrop_embedding_scaled_backward", [&] {
    const TensorScale<scalar_t> f{ptr<scalar_t>(scale)};
    gw = sparse ? gather_sparse<scalar_t>(grad, ids, id, V, padding_idx, f)
                : gather_dense<scalar_t>(grad, id, ids.numel(), V, padding_idx, f);
  });
  return gw;
}

// The weight's gradient for embedding_hashed: dense (V, E) or, with sparse, nn.Embedding(sparse=True)'s form.
Tensor embedding_hashed_backward(Tensor grad, Tensor ids, std::vector<int64_t> key, double value, int64_t V,
                                 bool sparse) {
  check_backward(grad, ids);
  TORCH_CHECK(key.size() == 5, "embedding_hashed_backward: a 5-part key expected");
  const int64_t* id = checked_ids(ids, V);
  Tensor gw;
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "embdrop_embedding_hashed_backward", [&] {
    const auto f = hashed_scale_of<scalar_t>(key, value);
    gw = sparse ? gather_sparse<scalar_t>(grad, ids, id, V, key[4], f)
                : gather_dense<scalar_t>(grad, id, ids.numel(), V, key[4], f);
  });
  return gw;
}

}  // namespace embdrop
