// The Python bindings of the fused CPU kernels (built together by embdrop.kernels.build).
#include <torch/extension.h>

#include "common.h"

namespace embdrop {

// embedding_hashed with its backward as one autograd node in C++: the Python autograd.Function it replaces cost
// more than the kernel itself (its apply and its backward through the GIL, about 10 and 25 us a call at
// (B, T, E) = (32, 200, 64) on the AMD EPYC, against 33 and 30 us for the forward and backward kernels).
struct EmbeddingHashedFn : public torch::autograd::Function<EmbeddingHashedFn> {
  static Tensor forward(torch::autograd::AutogradContext* ctx, Tensor weight, Tensor ids, std::vector<int64_t> key,
                        double value, bool sparse) {
    ctx->save_for_backward({ids});
    ctx->saved_data["key"] = key;
    ctx->saved_data["value"] = value;
    ctx->saved_data["sparse"] = sparse;
    ctx->saved_data["V"] = weight.size(0);
    std::vector<int64_t> shape = ids.sizes().vec();  // (..., E): the ids' shape and the embedding's size
    shape.push_back(weight.size(1));
    return embedding_hashed(weight.contiguous(), ids, key, value).view(shape);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const Tensor& grad = grads[0];
    Tensor dw;
    if (grad.defined() && at::GradMode::is_enabled() && grad.requires_grad()) {
      // create_graph (a gradient penalty): ATen's ops, which autograd can differentiate again
      const Tensor ids = ctx->get_saved_variables()[0].reshape({-1}).contiguous();
      const auto key = ctx->saved_data["key"].toIntVector();
      const int64_t V = ctx->saved_data["V"].toInt(), E = grad.size(-1);
      Tensor values = grad.reshape({-1, E}) *
                      word_keep(ids, key[0], key[1], key[2], key[3], key[4], ctx->saved_data["value"].toDouble(),
                                grad.scalar_type())
                          .unsqueeze(1);
      Tensor rows = ids;
      if (key[4] >= 0) {  // as nn.Embedding: the padding row gets no gradient
        const Tensor real = ids.ne(key[4]);
        rows = ids.index({real});
        values = values.index({real});
      }
      dw = ctx->saved_data["sparse"].toBool() ? at::sparse_coo_tensor(rows.unsqueeze(0), values, {V, E})
                                             : at::zeros({V, E}, values.options()).index_add(0, rows, values);
    } else if (grad.defined()) {
      const Tensor ids = ctx->get_saved_variables()[0];
      dw = embedding_hashed_backward(grad.reshape({-1, grad.size(-1)}).contiguous(), ids.view(-1),
                                     ctx->saved_data["key"].toIntVector(), ctx->saved_data["value"].toDouble(),
                                     ctx->saved_data["V"].toInt(), ctx->saved_data["sparse"].toBool());
    }
    return {dw, Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

// ids: contiguous int64, any shape; returns (*ids.shape, E) with a gradient for weight.
Tensor embedding_hashed_autograd(Tensor weight, Tensor ids, std::vector<int64_t> key, double value, bool sparse) {
  return EmbeddingHashedFn::apply(weight, ids, key, value, sparse);
}

}  // namespace embdrop

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lstm_forward", &embdrop::lstm_forward);
  m.def("lstm_backward", &embdrop::lstm_backward);
  m.def("gru_forward", &embdrop::gru_forward);
  m.def("gru_backward", &embdrop::gru_backward);
  m.def("batched_product", &embdrop::batched_product);
  m.def("gate_inputs", &embdrop::gate_inputs);
  m.def("gate_inputs_backward", &embdrop::gate_inputs_backward);
  m.def("masked_projection", &embdrop::masked_projection);
  m.def("masked_projection_exact", &embdrop::masked_projection_exact);
  m.def("set_masked_products", &embdrop::set_masked_products);
  m.def("masked_input_grad", &embdrop::masked_input_grad);
  m.def("masked_input_grad_exact", &embdrop::masked_input_grad_exact);
  m.def("onednn_gemm_available", &embdrop::onednn_gemm_available);
  m.def("set_row_blocks", &embdrop::set_row_blocks);
  m.def("set_own_products", &embdrop::set_own_products);
  m.def("own_products", &embdrop::own_products);
  m.def("own_product_sizes", &embdrop::own_product_sizes);
  m.def("pad_columns", &embdrop::pad_columns);
  // (G, M, K) x (G, K, N) for the tests and benchmarks/step_products.py: the library's products, or with bp (b
  // padded by pad_columns) the kernel's own
  m.def("gate_products", [](at::Tensor a, at::Tensor b, std::optional<at::Tensor> bp) {
    TORCH_CHECK(a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0) && a.size(2) == b.size(1) &&
                    a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat && a.is_contiguous() &&
                    b.is_contiguous() && (!bp || (bp->dim() == 3 && bp->size(0) == b.size(0) &&
                    bp->size(1) == b.size(1) && bp->size(2) >= b.size(2) && bp->is_contiguous())),
                "embdrop gate_products: expected contiguous float32 (G, M, K), (G, K, N) and (G, K, >= N), got ",
                a.sizes(), ", ", b.sizes(), (bp ? bp->sizes() : at::IntArrayRef{}));
    at::Tensor out = at::empty({a.size(0), a.size(1), b.size(2)}, a.options());
    if (bp)
      embdrop::own_gate_products(out.data_ptr<float>(), a.data_ptr<float>(), a.size(1) * a.size(2),
                                 bp->data_ptr<float>(), bp->size(2), a.size(0), a.size(1), a.size(2), b.size(2));
    else
      embdrop::gate_products(out.data_ptr<float>(), a.data_ptr<float>(), a.size(1) * a.size(2), b.data_ptr<float>(),
                             a.size(0), a.size(1), a.size(2), b.size(2));
    return out;
  });
  m.def("pool_held_bytes", &embdrop::pool_held_bytes);
  m.def("pooled_contiguous", &embdrop::pooled_contiguous);
  m.def("set_pool_cap_mb", &embdrop::set_pool_cap_mb);
  m.def("keep_mask", &embdrop::keep_mask);
  m.def("uniform_keep", &embdrop::uniform_keep);
  m.def("hashed_scale", &embdrop::hashed_scale);
  m.def("word_keep", &embdrop::word_keep);
  m.def("embedding_scaled", &embdrop::embedding_scaled);
  m.def("embedding_scaled_backward", &embdrop::embedding_scaled_backward);
  m.def("embedding_hashed", &embdrop::embedding_hashed);
  m.def("embedding_hashed_backward", &embdrop::embedding_hashed_backward);
  m.def("embedding_hashed_autograd", &embdrop::embedding_hashed_autograd);
}
