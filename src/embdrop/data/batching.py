"""Batching: Keras-style padding and truncation, length buckets for classification, BPTT streams for language models.

All outputs are batch first: padded ids (B, T), language-model streams (B, L) and BPTT windows (B, t).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from embdrop import _checks

SIDES = ("pre", "post")


def pad_sequences(
    sequences: Sequence[Sequence[int] | Tensor],
    maxlen: int | None = None,
    *,
    padding: str = "pre",
    truncating: str = "pre",
    value: int = 0,
) -> Tensor:
    """Pad (and truncate) id sequences to one (B, T) int64 tensor, as Keras' ``pad_sequences``.

    Keras' defaults are kept: ``padding="pre"`` puts the pad ids in front, so a recurrent layer reads the real
    tokens last, and ``truncating="pre"`` drops the *start* of a long sequence (keeping its end). T is ``maxlen``,
    or the longest sequence when ``maxlen`` is None.

    Args:
        sequences: lists of ints or 1-D int tensors.
        maxlen: the output length T (>= 1), or None.
        padding: "pre" or "post": where the pad ids go.
        truncating: "pre" or "post": which end of a too-long sequence is cut.
        value: the pad id.

    Shape:
        Output: (B, T).

    Example:
        >>> pad_sequences([[1, 2, 3], [4]], maxlen=2)
        tensor([[2, 3],
                [0, 4]])
        >>> pad_sequences([[1, 2, 3], [4]], padding="post", truncating="post")
        tensor([[1, 2, 3],
                [4, 0, 0]])
    """
    _checks.choice("padding", padding, SIDES)
    _checks.choice("truncating", truncating, SIDES)
    if maxlen is not None:
        maxlen = _checks.integer("maxlen", maxlen, low=1)
    value = _checks.integer("value", value)
    seqs = [s if isinstance(s, Tensor) else torch.as_tensor(s, dtype=torch.int64) for s in sequences]
    for i, s in enumerate(seqs):
        if s.dim() != 1 or s.dtype.is_floating_point or s.dtype.is_complex:
            raise _checks.invalid(f"sequences[{i}]", "a 1-D sequence of ints", _checks.describe(s))
    t = maxlen if maxlen is not None else max((len(s) for s in seqs), default=0)
    out = torch.full((len(seqs), t), value, dtype=torch.int64)
    for i, s in enumerate(seqs):
        s = s[-t:] if truncating == "pre" else s[:t]
        n = len(s)
        if n:
            if padding == "pre":
                out[i, t - n :] = s
            else:
                out[i, :n] = s
    return out


def pad_flat(
    flat: Tensor, offsets: Tensor, maxlen: int, *, padding: str = "pre", truncating: str = "pre", value: int = 0
) -> Tensor:
    """:func:`pad_sequences` of the sequences ``flat[offsets[i]:offsets[i + 1]]``, without making one tensor each.

    For many short texts (a million rows of a CSV) the per-sequence tensors cost as much as the tokenising; this
    places every id with one gather per block of rows instead.

    Args:
        flat: all the ids, one sequence after another (L,).
        offsets: (N + 1,) start of each sequence in ``flat``, then L.
        maxlen: the output length T (>= 1).
        padding: "pre" or "post".
        truncating: "pre" or "post".
        value: the pad id.

    Example:
        >>> pad_flat(torch.tensor([1, 2, 3, 4]), torch.tensor([0, 3, 4]), 2)
        tensor([[2, 3],
                [0, 4]])
    """
    _checks.choice("padding", padding, SIDES)
    _checks.choice("truncating", truncating, SIDES)
    t = _checks.integer("maxlen", maxlen, low=1)
    flat, offsets = flat.long(), offsets.long()
    n = offsets.numel() - 1
    out = torch.full((n, t), value, dtype=torch.int64)
    cols = torch.arange(t)  # (T,)
    block = max(1, (1 << 22) // t)  # rows per block: the (rows, T) index matrices stay near 32 MB
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        start, length = offsets[lo:hi], offsets[lo + 1 : hi + 1] - offsets[lo:hi]  # (R,)
        kept = length.clamp(max=t)  # (R,)
        first = start + (length - kept if truncating == "pre" else 0)  # (R,) the first id kept
        shift = (t - kept) if padding == "pre" else torch.zeros_like(kept)  # (R,) the column of that id
        pos = cols.unsqueeze(0) - shift.unsqueeze(1)  # (R, T): index into the kept ids, or out of range
        real = (pos >= 0) & (pos < kept.unsqueeze(1))  # (R, T)
        index = (first.unsqueeze(1) + pos.clamp(min=0)).clamp(max=max(flat.numel() - 1, 0))  # (R, T)
        if flat.numel():
            out[lo:hi] = torch.where(real, flat[index], value)
    return out


def bucket_batches(
    lengths: Sequence[int] | Tensor,
    batch_size: int,
    *,
    shuffle: bool = True,
    bucket_batches: int = 50,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """Index batches of similar lengths, so padding to each batch's longest sequence wastes little.

    The indices are shuffled, cut into buckets of ``bucket_batches * batch_size``, sorted by length inside each
    bucket (stable), cut into batches, and the batches shuffled: every epoch gives different batches, each of
    sequences of nearly equal length. With ``shuffle=False`` the whole set is sorted by length (for evaluation).

    Args:
        lengths: the length of every example, (N,).
        batch_size: examples per batch (the last batch may be smaller).
        shuffle: draw a new order (True, for training) or sort everything (False).
        bucket_batches: batches per bucket: larger buckets give tighter lengths and less randomness.
        generator: the random source (None: the global RNG).

    Returns:
        A list of int64 index tensors; together they hold every index in [0, N) once.

    Example:
        >>> [b.tolist() for b in bucket_batches([5, 1, 4, 2], 2, shuffle=False)]
        [[1, 3], [2, 0]]
    """
    batch_size = _checks.integer("batch_size", batch_size, low=1)
    bucket_batches = _checks.integer("bucket_batches", bucket_batches, low=1)
    lengths = torch.as_tensor(lengths, dtype=torch.int64)
    if lengths.dim() != 1:
        raise _checks.invalid("lengths", "a 1-D sequence of ints", _checks.describe(lengths))
    n = len(lengths)
    if not shuffle:
        order = torch.sort(lengths, stable=True).indices
        return list(order.split(batch_size))
    order = torch.randperm(n, generator=generator)
    size = bucket_batches * batch_size
    batches = []
    for bucket in order.split(size):
        bucket = bucket[torch.sort(lengths[bucket], stable=True).indices]
        batches.extend(bucket.split(batch_size))
    perm = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in perm]


def batchify(ids: Tensor, batch_size: int) -> Tensor:
    """Cut one long id stream (N,) into B = ``batch_size`` contiguous rows (B, N // B); the remainder is dropped.

    Row b holds tokens [b * L, (b + 1) * L): each row is read left to right across batches, so a language model
    can carry its hidden state from one BPTT window to the next.

    Example:
        >>> batchify(torch.arange(10), 3)
        tensor([[0, 1, 2],
                [3, 4, 5],
                [6, 7, 8]])
    """
    batch_size = _checks.integer("batch_size", batch_size, low=1)
    if ids.dim() != 1:
        raise _checks.invalid("ids", "a 1-D id stream (N,)", _checks.describe(ids))
    length = len(ids) // batch_size
    if length < 2:
        raise _checks.invalid("batch_size", f"at most {len(ids) // 2} for a stream of {len(ids)} ids", batch_size)
    return ids[: length * batch_size].view(batch_size, length)  # (B, L)


def bptt_batches(
    stream: Tensor,
    bptt: int,
    *,
    variable: bool = False,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Consecutive windows (inputs, targets) over a batchified stream (B, L); targets are inputs shifted by one.

    With ``variable=True`` the window length varies as in AWD-LSTM (Merity et al. 2017): each window first picks
    ``bptt`` with probability 0.95 and ``bptt / 2`` otherwise, then draws its length from a normal with that mean
    and standard deviation 5, at least 5 and at most ``bptt + 40``; rescale the learning rate by
    ``t / bptt`` for a window of length t, as AWD-LSTM does. Without it every window but the last has length ``bptt``.

    Shape:
        stream: (B, L). Each yield: (B, t) inputs and (B, t) targets, t <= bptt (+ 40 with ``variable``).

    Example:
        >>> stream = batchify(torch.arange(12), 2)
        >>> [(x.tolist(), y.tolist()) for x, y in bptt_batches(stream, 3)]
        [([[0, 1, 2], [6, 7, 8]], [[1, 2, 3], [7, 8, 9]]), ([[3, 4], [9, 10]], [[4, 5], [10, 11]])]
    """
    bptt = _checks.integer("bptt", bptt, low=1)
    _checks.rank("stream", stream, 2, "BL")
    last = stream.shape[1] - 1  # the final column is only ever a target
    i = 0
    while i < last:
        t = bptt
        if variable:
            base = bptt if torch.rand((), generator=generator).item() < 0.95 else bptt / 2
            t = max(5, min(bptt + 40, int(round(base + 5.0 * torch.randn((), generator=generator).item()))))
        t = min(t, last - i)
        yield stream[:, i : i + t], stream[:, i + 1 : i + 1 + t]
        i += t


def num_bptt_batches(stream: Tensor, bptt: int) -> int:
    """The number of fixed-length windows :func:`bptt_batches` yields (for a progress bar)."""
    return math.ceil((stream.shape[1] - 1) / bptt)
