"""Recurrent implementations behind ``embdrop.LSTM`` / ``embdrop.GRU``.

All share one interface, on gate-major, time-major input projections ``xw`` of shape (G, T, B, H):

- :mod:`.reference`: a plain PyTorch loop, differentiated by autograd; every feature (zoneout included).
- :mod:`.cpu`: the same recurrence as a C++ extension compiled on first use, with a hand-written backward;
  falls back to the reference (with a warning) where no compiler is present.
- PyTorch's own fused ``torch.lstm`` / ``torch.gru`` (oneDNN/cuDNN) serve the paths without recurrent masks.
"""
