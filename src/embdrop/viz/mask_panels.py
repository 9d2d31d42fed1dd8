"""The masks the pictures show, drawn by each layer's own ``sample_mask``/``sample_masks`` and laid out as panels of
grids (see :mod:`embdrop.viz.masks`, which draws them)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from embdrop import _checks
from embdrop.layers.dropout import Dropout, SpatialDropout1D, TokenDropout, WordDropout
from embdrop.layers.embedding import Embedding
from embdrop.layers.recurrent import LSTM
from embdrop.layers.weight_drop import DropConnect
from embdrop.viz.names import DEFAULT_P, DEFAULT_SEED, DEFAULT_SHAPE, RECURRENT_VARIANTS
from embdrop.viz.names import MASK_VARIANTS as VARIANTS

# A tiny vocabulary and text whose words repeat, so that embedding dropout's "every occurrence" shows.
WORDS = ("<pad>", "<unk>", "the", "cat", "sat", "on", "mat", "dog", "ran")
TEXT = ("the", "cat", "sat", "on", "the", "mat", "the", "dog", "ran", "on", "the", "mat")

KEPT_COLOUR, DROPPED_COLOUR, UNMASKED_COLOUR = "#3b75af", "#ffffff", "#d9d9d9"


@dataclass
class Grid:
    """One drawn matrix of mask cells.

    Attributes:
        label: what the grid is ("sample 0", "x_t", ...).
        keep: (rows, cols) bool, True where the mask keeps the entry; None where no mask is applied (all pass).
        rows: what the rows are ("time step", "gate", ...); cols: what the columns are ("channel", ...).
        shape: (rows, cols).
        row_labels: a label per row (the words of the sequence, the gates), or None.
        col_labels: a label per column ("" for none), or None.
        step: the time step of a recurrent grid, else None.
    """

    label: str
    keep: Tensor | None
    rows: str
    cols: str
    shape: tuple[int, int]
    row_labels: list[str] | None = None
    col_labels: list[str] | None = None
    step: int | None = None


@dataclass
class Panel:
    """One variant: its grids, the survivors' scale and its ``Mask:`` line."""

    variant: str
    title: str
    scale: str
    caption: str
    grids: list[Grid] = field(default_factory=list)


def mask_line(cls: type) -> str:
    """The ``Mask:`` line a layer class declares (its ``mask_text``): the caption under its panel."""
    if not getattr(cls, "mask_text", ""):
        raise LookupError(f"{cls.__name__} has no Mask: line")
    return cls.mask_text


def sentence_ids(batch: int, steps: int) -> Tensor:
    """Ids (B, T) of ``TEXT``: sample b starts 3*b words in and wraps around, so words repeat within a sample."""
    idx = (3 * torch.arange(batch).unsqueeze(1) + torch.arange(steps).unsqueeze(0)) % len(TEXT)  # (B, T)
    lookup = torch.tensor([WORDS.index(w) for w in TEXT])
    return lookup[idx]  # (B, T)


LIMITS = (8, 40, 32)  # the largest B, T and C that still make a readable picture


def check_shape(shape: object) -> tuple[int, int, int]:
    """A (B, T, C) of three positive ints, small enough to draw (``LIMITS``)."""
    expected = "three positive ints B,T,C such as 2,8,8, with B <= {}, T <= {}, C <= {}".format(*LIMITS)
    if not isinstance(shape, (tuple, list)) or len(shape) != 3:
        raise _checks.invalid("shape", expected, repr(shape))
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in shape):
        raise _checks.invalid("shape", expected, repr(tuple(shape)))
    if any(n > limit for n, limit in zip(shape, LIMITS, strict=True)):
        raise _checks.invalid("shape", expected, repr(tuple(shape)))
    return tuple(shape)  # type: ignore[return-value]


def check_variants(variants: object) -> tuple[str, ...]:
    """A non-empty list of names from ``VARIANTS``, without repeats."""
    if isinstance(variants, str) or not isinstance(variants, (tuple, list)) or not variants:
        raise _checks.invalid("variant", "a non-empty list of " + ", ".join(VARIANTS), repr(variants))
    for v in variants:
        _checks.choice("variant", v, VARIANTS)
    return tuple(dict.fromkeys(variants))


def generator(seed: int, variant: str) -> torch.Generator:
    """The generator variant ``variant`` draws from: seeded with ``seed + VARIANTS.index(variant)``."""
    return torch.Generator().manual_seed(seed + VARIANTS.index(variant))


def _scale(p: float) -> str:
    return f"p = {p}: each mask entry dropped with probability {p}; survivors x 1/(1-p) = {1 / (1 - p):.3g}"


def _words(ids: Tensor) -> list[str]:
    return [WORDS[int(i)] for i in ids]


def _sequence_panel(variant: str, x: Tensor, ids: Tensor, p: float, g: torch.Generator) -> Panel:
    B, T, C = x.shape
    if variant in ("dropout", "spatial", "token"):
        cls = {"dropout": Dropout, "spatial": SpatialDropout1D, "token": TokenDropout}[variant]
        layer = cls(p)
        keep = layer.sample_masks(x, generator=g).expand(B, T, C).bool()  # (B, T, C)
        title = {"dropout": "Dropout", "spatial": "SpatialDropout1D", "token": "TokenDropout"}[variant]
        title = f"{title}({p}) after the embedding"
        scale = _scale(p)
    elif variant == "word":
        cls = WordDropout
        layer = WordDropout(p, unk_id=WORDS.index("<unk>"), padding_idx=0)
        keep = layer.sample_masks(ids, generator=g).unsqueeze(-1).expand(B, T, C)  # (B, T) -> (B, T, C)
        title = f"WordDropout({p}, unk_id=1) before the embedding"
        scale = f"p = {p}: each word replaced by <unk> with probability {p}; nothing is rescaled"
    else:
        cls = Embedding
        mode = variant.split("-")[1]
        layer = Embedding(len(WORDS), C, padding_idx=0, dropout=p, dropout_mode=mode)
        keep = layer.sample_masks(ids, generator=g).bool().unsqueeze(-1).expand(B, T, C)  # (B, T) -> (B, T, C)
        title = f"Embedding(dropout={p}, dropout_mode={mode!r})"
        scale = _scale(p).replace("each mask entry", "each word type")
    grids = [Grid(f"sample {b}", keep[b], "time step", "channel", (T, C), _words(ids[b])) for b in range(B)]
    return Panel(variant, title, scale, mask_line(cls), grids)


def _dropconnect_panel(C: int, p: float, g: torch.Generator) -> Panel:
    out = max(2, C // 2)
    layer = DropConnect(nn.Linear(C, out), p, names=("weight",))
    keep = layer.sample_masks(generator=g)["weight"].bool()  # (out, C), as Linear.weight prints
    grid = Grid(f"Linear({C}, {out}).weight", keep, "output unit", "input unit", (out, C))
    return Panel("dropconnect", f"DropConnect(Linear({C}, {out}), {p})", _scale(p), mask_line(DropConnect), [grid])


def _or_ones(mask: Tensor | None, shape: tuple[int, ...]) -> Tensor:
    """A layer with p = 0 draws no mask: everything is kept."""
    return torch.ones(shape) if mask is None else mask


GATES = list("ifgo")


def _recurrent_panel(variant: str, x: Tensor, p: float, g: torch.Generator) -> Panel:
    """Sample 0 of an LSTM (C -> H = max(2, C // 2)) over T steps; the draws: the LSTM's masks, then the others'."""
    B, T, C = x.shape
    H = max(2, C // 2)
    h = torch.zeros(B, T, H)  # the LSTM's output, for the output masks' shapes
    G = 4
    if variant == "naive":
        lstm = LSTM(C, H, dropout=p, variational=p == 0)  # p = 0: no mask either way (and no warning)
        m = lstm.sample_masks(x, generator=g)
        m.input[0][0] = _or_ones(m.input[0][0], (B, T, C))
        out_keep = Dropout(p).sample_masks(h, generator=g)  # (B, T, H)
        x_keep = [m.input[0][0][0, t].unsqueeze(0) for t in range(T)]  # (1, C) per step
        h_keep = [None] * T
        y_keep = [out_keep[0, t].unsqueeze(0) for t in range(T)]  # (1, H)
        title = f"naive (Zaremba): LSTM(dropout={p}, variational=False) + Dropout({p}) on h_t"
        caption = (
            "Mask: input (B, T, C) and output (B, T, H), redrawn at every step; nothing on h(t-1) (grey). A "
            "different pattern at each step."
        )
        x_rows = None
    elif variant == "variational":
        lstm = LSTM(C, H, dropout=p, recurrent_dropout=p)
        m = lstm.sample_masks(x, generator=g)
        m.input[0][0] = _or_ones(m.input[0][0], (G, B, C))
        m.recurrent[0][0] = _or_ones(m.recurrent[0][0], (G, B, H))
        out_keep = SpatialDropout1D(p).sample_masks(h, generator=g)  # (B, 1, H)
        x_keep = [m.input[0][0][:, 0]] * T  # (G, B, C) -> (G, C), the same at every step
        h_keep = [m.recurrent[0][0][:, 0]] * T  # (G, B, H) -> (G, H)
        y_keep = [out_keep[0, 0].unsqueeze(0)] * T  # (1, H)
        title = f"variational (Gal, Keras): LSTM(dropout={p}, recurrent_dropout={p}) + SpatialDropout1D({p}) on h_t"
        caption = (
            "Mask: input (4, B, C) and recurrent (4, B, H), one per gate (rows i, f, g, o), output (B, 1, H); drawn "
            "once per sequence and repeated at every step."
        )
        x_rows = GATES
    else:
        lstm = LSTM(C, H, weight_dropout=p)
        m = lstm.sample_masks(x, generator=g)
        m.weight[0][0] = _or_ones(m.weight[0][0], (G * H, H))
        in_keep = SpatialDropout1D(p).sample_masks(x, generator=g)  # (B, 1, C)
        out_keep = SpatialDropout1D(p).sample_masks(h, generator=g)  # (B, 1, H)
        x_keep = [in_keep[0, 0].unsqueeze(0)] * T  # (1, C)
        h_keep = [m.weight[0][0].T] * T  # (4H, H) -> (H, 4H): h(t-1) unit down, gate unit across (i, f, g, o blocks)
        y_keep = [out_keep[0, 0].unsqueeze(0)] * T
        title = f"weight drop (AWD-LSTM): LSTM(weight_dropout={p}), LockedDropout({p}) on x_t and h_t"
        caption = (
            "Mask: weight_hh (4H, H), drawn here as W_hh^T (H, 4H), shared by every sample and step; locked input "
            "(B, 1, C) and output (B, 1, H); all drawn once per call."
        )
        x_rows = None
    grids = []
    for t in range(T):
        grids.append(Grid("x_t", x_keep[t].bool(), "gate" if x_rows else "", "input unit", tuple(x_keep[t].shape),
                          x_rows, step=t))  # fmt: skip
        if variant == "weight-drop":
            blocks = [GATES[c // H] if c % H == H // 2 else "" for c in range(G * H)]
            grids.append(Grid("W_hh^T", h_keep[t].bool(), "h(t-1) unit", "gate unit (i, f, g, o blocks)", (H, G * H),
                              None, blocks, step=t))  # fmt: skip
        elif h_keep[t] is None:
            grids.append(Grid("h(t-1)", None, "", "hidden unit", (1, H), step=t))
        else:
            grids.append(Grid("h(t-1)", h_keep[t].bool(), "gate", "hidden unit", (G, H), GATES, step=t))
        grids.append(Grid("out h_t", y_keep[t].bool(), "", "hidden unit", (1, H), step=t))
    return Panel(variant, title, _scale(p), caption, grids)


def sample(
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    p: float = DEFAULT_P,
    seed: int = DEFAULT_SEED,
    variants: tuple[str, ...] = VARIANTS,
) -> list[Panel]:
    """The panels of ``variants`` for an input of ``shape`` (B, T, C), drawn with the layers' own samplers.

    Variant k of ``VARIANTS`` uses ``torch.Generator().manual_seed(seed + k)``. Its draws, in order: the layer's
    ``sample_mask`` (sequence variants: on a (B, T, C) input, or on the ids of :func:`sentence_ids` for word and
    embedding dropout); DropConnect's ``sample_masks`` on ``Linear(C, max(2, C // 2))``; the recurrent variants
    ``LSTM(C, C // 2, ...).sample_masks(x)``, then naive ``Dropout(p)`` on the (B, T, H) output, variational
    ``SpatialDropout1D(p)`` on it, weight drop ``SpatialDropout1D(p)`` on the input and then on the output.
    """
    B, T, C = check_shape(shape)
    p = _checks.probability("p", p)
    seed = _checks.seed("seed", seed)
    variants = check_variants(variants)
    x = torch.zeros(B, T, C)
    ids = sentence_ids(B, T)
    panels = []
    for v in variants:
        g = generator(seed, v)
        if v == "dropconnect":
            panels.append(_dropconnect_panel(C, p, g))
        elif v in RECURRENT_VARIANTS:
            panels.append(_recurrent_panel(v, x, p, g))
        else:
            panels.append(_sequence_panel(v, x, ids, p, g))
    return panels
