// The Python bindings of the fused CPU kernels (built together by embdrop.kernels.build).
#include <torch/extension.h>

#include "common.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lstm_forward", &embdrop::lstm_forward);
  m.def("lstm_backward", &embdrop::lstm_backward);
  m.def("gru_forward", &embdrop::gru_forward);
  m.def("gru_backward", &embdrop::gru_backward);
  m.def("batched_product", &embdrop::batched_product);
  m.def("gate_inputs", &embdrop::gate_inputs);
  m.def("gate_inputs_backward", &embdrop::gate_inputs_backward);
  m.def("masked_projection", &embdrop::masked_projection);
  m.def("onednn_gemm_available", &embdrop::onednn_gemm_available);
  m.def("set_row_blocks", &embdrop::set_row_blocks);
  m.def("pool_held_bytes", &embdrop::pool_held_bytes);
  m.def("set_pool_cap_mb", &embdrop::set_pool_cap_mb);
  m.def("keep_mask", &embdrop::keep_mask);
  m.def("uniform_keep", &embdrop::uniform_keep);
  m.def("hashed_scale", &embdrop::hashed_scale);
  m.def("word_keep", &embdrop::word_keep);
  m.def("embedding_scaled", &embdrop::embedding_scaled);
  m.def("embedding_scaled_backward", &embdrop::embedding_scaled_backward);
  m.def("embedding_hashed", &embdrop::embedding_hashed);
  m.def("embedding_hashed_backward", &embdrop::embedding_hashed_backward);
}
