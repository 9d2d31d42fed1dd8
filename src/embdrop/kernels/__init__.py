"""The compute under the functional core: tensors and keys in, tensors out; no mask's meaning, no dispatch.

Which of these runs is decided above, in :mod:`embdrop.functional.recurrent`. One module per job:

- :mod:`.reference`: the recurrences as a plain PyTorch loop (or torch's ``scan`` under ``torch.export``),
  differentiated by autograd; every cell and feature.
- :mod:`.build`: building, caching and loading the C++ extension (``csrc/``), compiled on first use; where it
  cannot be built, :func:`.build.available` is False and the reference runs instead (one warning).
- :mod:`.recurrence`: the fused LSTM/GRU recurrences of the extension, with a hand-written backward.
- :mod:`.hashed`: hashed keep-masks drawn from one key, written out or applied unwritten.
- :mod:`.embedding`: embedding dropout's lookup and scaling in one pass.
- :mod:`.gpu_recurrence`: the LSTM/GRU recurrences on CUDA, one Triton launch per step (:mod:`.triton_steps`)
  or one per call (:mod:`.triton_sequence`), the cells shared (:mod:`.triton_cells`); imported only where Triton
  is installed; checked on CPU under ``TRITON_INTERPRET=1``.

PyTorch's own fused ``torch.lstm`` / ``torch.gru`` (oneDNN/cuDNN) serve the paths without recurrent masks.
"""
