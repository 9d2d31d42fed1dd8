"""Padded batches for the recurrent layers: where each row's real steps lie, and moving rows along T.

A batch may be post-padded (real steps first, Keras' ``padding="post"``) or pre-padded (Keras' default); the layers
rotate pre-padded rows to the front, run every row post-padded, and rotate the output back.
"""

from __future__ import annotations

import torch
from torch import Tensor

from embdrop import _checks
from embdrop.functional.steps import gather as _steps
from embdrop.functional.steps import roll

__all__ = ["reverse", "roll", "spans"]


def spans(lengths: Tensor | None, B: int, T: int) -> tuple[Tensor | None, Tensor | None]:
    """(start, length) per sequence from (B,) lengths or a (B, T) padding mask; None, None if nothing is padded."""
    if lengths is None:
        return None, None
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(lengths)
    if _checks.tracing():  # torch.export / torch.compile: no value can be read; every row is treated as padded
        if lengths.dtype == torch.bool:
            return lengths.int().argmax(1), lengths.sum(1)
        return torch.zeros_like(lengths, dtype=torch.long), lengths.long()
    if lengths.dtype == torch.bool and tuple(lengths.shape) == (B, T):
        if T == 0 or B == 0:
            return None, None
        valid = lengths.cpu()
        n = valid.sum(1)
        start = valid.int().argmax(1)
        t = torch.arange(T).unsqueeze(0)
        contiguous = valid == ((t >= start.unsqueeze(1)) & (t < (start + n).unsqueeze(1)))
        if not bool(contiguous.all()) or bool((n == 0).any()):
            raise _checks.invalid(
                "lengths",
                "a padding mask (B, T) whose True entries form one non-empty run per row (pre- or post-padding)",
                _checks.describe(lengths),
            )
    elif lengths.dim() == 1 and lengths.shape[0] == B and not lengths.is_floating_point():
        n = lengths.cpu().long()
        if T == 0 and bool((n == 0).all()):
            return None, None
        if bool((n < 1).any()) or bool((n > T).any()):
            raise _checks.invalid("lengths", f"lengths in [1, {T}]", f"{_checks.describe(lengths)} {n.tolist()}")
        start = torch.zeros_like(n)
    else:
        raise _checks.invalid(
            "lengths", f"an int tensor (B,) = ({B},) or a bool mask (B, T) = ({B}, {T})", _checks.describe(lengths)
        )
    if bool((start == 0).all()) and bool((n == T).all()):
        return None, None
    return start, n


def reverse(x: Tensor, n: Tensor | None) -> Tensor:
    """Each sequence reversed within its length (B, T, C); the padding stays at the end."""
    if n is None:
        return x.flip(1)
    B, T = x.shape[:2]
    t = torch.arange(T).unsqueeze(0)
    n = n.unsqueeze(1)
    idx = torch.where(t < n, n - 1 - t, t)  # (B, T)
    return _steps(x, idx)
