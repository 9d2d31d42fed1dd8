"""``embdrop show``: what each dropout variant does to one (B, T, C) input, side by side, as text.

Variant k of ``VARIANTS`` samples its mask with its own generator seeded with ``seed + k`` (distinct streams, so
the panels do not echo one another's draws), then applies exactly that mask. The picture therefore marks the entries
the mask dropped (not merely the zeros of the output), and one variant shown alone looks the same as in the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from embdrop import _checks
from embdrop.layers.dropout import Dropout, SpatialDropout1D, TokenDropout
from embdrop.layers.embedding import DROPOUT_MODES, Embedding
from embdrop.viz.names import SHOW_VARIANTS as VARIANTS

DROPPED = "."
# The picture is text for a terminal: B <= 16, T <= 64, C <= 64 (each panel prints B*T rows of C numbers), checked
# before anything is allocated.
LIMITS = (16, 64, 64)


@dataclass
class Column:
    """One column of the picture: a variant's output, where its mask dropped, and what that mask is."""

    title: str
    values: Tensor  # (B, T, C)
    dropped: Tensor  # (B, T, C) bool
    explanation: str


def default_ids(batch: int, steps: int) -> Tensor:
    """Token ids (B, T) with repeated words, so that embedding dropout's "whole word" effect is visible:
    two word types alternate, 1 2 1 ... in even sequences and 2 1 2 ... in odd ones."""
    b = torch.arange(batch).unsqueeze(1)  # (B, 1)
    t = torch.arange(steps).unsqueeze(0)  # (1, T)
    return 1 + (b + t) % 2  # (B, T)


def make_panels(
    x: Tensor, p: float, seed: int, variants: tuple[str, ...] = VARIANTS, mode: str = "sample"
) -> tuple[list[Column], Tensor]:
    """Apply each variant to ``x`` (B, T, C) with a generator seeded by ``seed``; return the panels and the ids."""
    _checks.rank("shape", x, 3, "(B, T, C)")
    p = _checks.probability("p", p)
    mode = _checks.choice("mode", mode, DROPOUT_MODES)
    for v in variants:
        _checks.choice("variant", v, VARIANTS)
    B, T, C = x.shape
    ids = default_ids(B, T)
    panels = []
    for v in variants:
        g = torch.Generator().manual_seed(seed + VARIANTS.index(v))
        if v == "embedding":
            # Each row x[b, t] stands for the vector of token ids[b, t]; the lookup itself is replaced by x.
            emb = Embedding(int(ids.max()) + 1, C, dropout=p, dropout_mode=mode)
            keep = emb.sample_masks(ids, generator=g).unsqueeze(-1).expand(B, T, C)  # (B, T, 1) -> (B, T, C)
            values = x * keep / (1 - p)
            scope = "its sequence" if mode == "sample" else "the whole batch"
            panel = Column(
                f"embedding dropout ({mode})",
                values,
                keep == 0,
                f"Embedding(dropout={p}, dropout_mode={mode!r}): one draw per word type per "
                f"{'sequence' if mode == 'sample' else 'batch'}; a dropped word is zero at every occurrence in "
                f"{scope}.",
            )
        else:
            layer = {"dropout": Dropout(p), "spatial": SpatialDropout1D(p), "token": TokenDropout(p)}[v]
            mask = layer.sample_masks(x, generator=g)
            values = layer(x, mask=mask)
            shape = "(B, T, C)" if v == "dropout" else "(B, 1, C)" if v == "spatial" else "(B, T, 1)"
            what = {
                "dropout": "every entry is drawn on its own: no rows or columns, scattered single entries.",
                "spatial": "shared across T: a dropped channel (column) is zero at every time step of its sample.",
                "token": "shared across C: a dropped time step (row) is zero in every channel.",
            }[v]
            title = {"dropout": "Dropout", "spatial": "SpatialDropout1D", "token": "TokenDropout"}[v]
            panel = Column(
                title,
                values,
                (mask == 0).expand(B, T, C),
                f"{title}(p={p}): mask {shape} = {tuple(mask.shape)}, {what}",
            )
        panels.append(panel)
    return panels, ids


def _cells(values: Tensor, dropped: Tensor, integral: bool) -> list[list[list[str]]]:
    fmt = (lambda v: str(int(round(v)))) if integral else (lambda v: f"{v:.2f}")
    return [
        [
            [DROPPED if d else fmt(float(v)) for v, d in zip(row, drow, strict=True)]
            for row, drow in zip(b, db, strict=True)
        ]
        for b, db in zip(values.tolist(), dropped.tolist(), strict=True)
    ]


def render(x: Tensor, panels: list[Column], ids: Tensor, p: float, seed: int) -> str:
    """The text picture: a header, the input and every panel side by side, one explanation line per variant."""
    B, T, C = x.shape
    scale = 1.0 / (1.0 - p)
    all_vals = [x] + [pl.values[~pl.dropped] for pl in panels]
    integral = all(bool((v == v.round()).all()) for v in all_vals)
    grids = [_cells(x, torch.zeros_like(x, dtype=torch.bool), integral)]
    grids += [_cells(pl.values, pl.dropped, integral) for pl in panels]
    width = max(len(c) for g in grids for b in g for row in b for c in row)
    lines_of = lambda g, b, t: "[" + " ".join(c.rjust(width) for c in g[b][t]) + "]"  # noqa: E731
    block = len(lines_of(grids[0], 0, 0))
    titles = ["input"] + [pl.title for pl in panels]
    cols = [max(block, len(t)) + 3 for t in titles]
    out = [
        f"x: shape (B, T, C) = {tuple(x.shape)}, p = {p}, seed = {seed}. Survivors are scaled by 1/(1-p) = "
        f"{scale:.4g}; '{DROPPED}' marks an entry the mask dropped.",
    ]
    if any(pl.title.startswith("embedding") for pl in panels):
        out.append(
            "Embedding dropout acts on token ids; here row x[b, t] stands for the vector of token "
            f"ids[b, t], ids = {ids.tolist()}."
        )
    out.append("")
    label_width = len(f"b={B - 1}") + 2
    out.append(" " * label_width + "".join(t.ljust(c) for t, c in zip(titles, cols, strict=True)).rstrip())
    for b in range(B):
        for t in range(T):
            label = (f"b={b}" if t == 0 else "").ljust(label_width)
            out.append(label + "".join(lines_of(g, b, t).ljust(c) for g, c in zip(grids, cols, strict=True)).rstrip())
        out.append("")
    out.extend(pl.explanation for pl in panels)
    return "\n".join(out)


def check_shape(shape: object) -> tuple[int, int, int]:
    """A (B, T, C) of three positive ints within ``LIMITS`` (the text must fit a terminal)."""
    expected = "three positive ints B,T,C such as 3,3,4, with B <= {}, T <= {}, C <= {}".format(*LIMITS)
    if not isinstance(shape, (tuple, list)) or len(shape) != 3:
        raise _checks.invalid("shape", expected, repr(shape))
    bad = (isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= m for n, m in zip(shape, LIMITS, strict=True))
    if any(bad):
        raise _checks.invalid("shape", expected, repr(tuple(shape)))
    return tuple(shape)  # type: ignore[return-value]


def show(
    shape: tuple[int, int, int] = (3, 3, 4),
    p: float = 0.5,
    seed: int = 0,
    variants: tuple[str, ...] = VARIANTS,
    mode: str = "sample",
) -> str:
    """The whole demonstration for ``x = arange(1, B*T*C + 1).reshape(B, T, C)``, as a string."""
    B, T, C = check_shape(shape)
    seed = _checks.seed("seed", seed)
    x = torch.arange(1, B * T * C + 1, dtype=torch.float32).reshape(B, T, C)
    panels, ids = make_panels(x, p, seed, variants, mode)
    return render(x, panels, ids, _checks.probability("p", p), seed)
