"""Moving a batch's rows along T, (B, T, C) -> (B, T, C): the recurrent layers rotate pre-padded rows to the front
for their steps and back after them (layers/_padding.py), and the recurrences' functional entry point rotates a
kernel-less path's output itself (functional/recurrent.py)."""

from __future__ import annotations

import torch
from torch import Tensor


def roll(x: Tensor, shift: Tensor) -> Tensor:
    """Row b of (B, T, C) rotated left by shift[b] along T."""
    B, T = x.shape[:2]
    idx = torch.arange(T, device=shift.device).unsqueeze(0) + shift.unsqueeze(1)  # (B, T), in (-T, 2T): |shift| < T
    # wrapped without `% T`: ONNX export cannot convert a remainder by a symbolic length (torch 2.13)
    idx = torch.where(idx >= T, idx - T, torch.where(idx < 0, idx + T, idx))
    return gather(x, idx)


def gather(x: Tensor, idx: Tensor) -> Tensor:
    """(B, T, C) with entry (b, t) = x[b, idx[b, t]]: whole rows of C copied by one index_select over the (B * T, C)
    rows (a gather with the index expanded over C reads an index per entry, and its backward is a scatter-add)."""
    B, T = x.shape[:2]
    b = torch.arange(B, device=x.device).unsqueeze(1)  # (B, 1)
    if not x.is_contiguous() and x.transpose(0, 1).is_contiguous():
        # a time-major (T, B, C) array seen batch first, as a recurrent layer's output is: its (T * B, C) rows are
        # gathered in batch-first order at once (a batch-first copy first would be a second pass, forward and back)
        flat = (idx.to(x.device) * B + b).reshape(-1)  # (B * T,): row idx[b, t] * B + b of the time-major array
        return x.transpose(0, 1).reshape(T * B, *x.shape[2:]).index_select(0, flat).view(x.shape)
    flat = (idx.to(x.device) + b * T).reshape(-1)  # (B * T,)
    return x.reshape(B * T, *x.shape[2:]).index_select(0, flat).view(x.shape)
