"""``embdrop masks``: pictures of the keep-masks embdrop's layers really sample.

Figure 1, "rows or columns?" (``LAYER_VARIANTS``): for a (B, T, C) input, one panel per dropout variant, one grid per
sample with time across and channels down; a kept cell is filled, a dropped one white and hatched (so the picture
reads in grey print). DropConnect has one grid, its weight matrix (out rows, in columns).

Figure 2, recurrent dropout unrolled (``RECURRENT_VARIANTS``): an LSTM over T steps for sample 0, with, at each step,
the masks on the input x_t (one column per gate where the masks are per gate), on the recurrent state h(t-1) and on
the output h_t. Naive (Zaremba) draws new input and output masks at every step and none on h(t-1); variational
(Gal & Ghahramani, Keras' ``dropout`` + ``recurrent_dropout``) repeats the same masks at every step; weight drop
(AWD-LSTM) drops entries of ``weight_hh`` (drawn (H, 4H): h(t-1) units down, gate units across), the same for every
step and sample, with locked dropout on the input and the output. This is Gal & Ghahramani's Figure 1, from masks.

Every mask comes from the layer's own ``sample_mask``/``sample_masks``: variant k of ``VARIANTS`` draws from a
generator seeded with ``seed + k``, in the order written in :func:`sample`, so a test (or a reader) can draw the
same masks again. Drawing keeps the data: every cell is a rectangle whose ``gid`` names the variant, the grid, the
cell and whether it was kept, and SVG output carries these as element ids.
"""

from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from embdrop import _checks, _extras
from embdrop.layers.dropout import Dropout, SpatialDropout1D, TokenDropout, WordDropout
from embdrop.layers.embedding import Embedding
from embdrop.layers.recurrent import LSTM
from embdrop.layers.weight_drop import DropConnect
from embdrop.viz.names import FORMATS, LAYER_VARIANTS, RECURRENT_VARIANTS
from embdrop.viz.names import MASK_VARIANTS as VARIANTS

# A tiny vocabulary and text whose words repeat, so that embedding dropout's "every occurrence" shows.
WORDS = ("<pad>", "<unk>", "the", "cat", "sat", "on", "mat", "dog", "ran")
TEXT = ("the", "cat", "sat", "on", "the", "mat", "the", "dog", "ran", "on", "the", "mat")

KEPT_COLOUR, DROPPED_COLOUR, UNMASKED_COLOUR = "#3b75af", "#ffffff", "#d9d9d9"


@dataclass
class Grid:
    """One drawn matrix of mask cells.

    Attributes:
        label: what the grid is ("sample 0", "step 2: x", ...).
        keep: (rows, cols) bool, True where the mask keeps the entry; None where no mask is applied (all pass).
        rows: what the rows are ("channel c", ...); cols: what the columns are.
        col_labels: a label per column (the words of the sequence), or None.
        step: the time step of a recurrent grid, else None.
    """

    label: str
    keep: Tensor | None
    rows: str
    cols: str
    shape: tuple[int, int]
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
    """The ``Mask:`` paragraph of a layer's docstring, on one line (the caption under its panel)."""
    doc = inspect.getdoc(cls) or ""
    for para in doc.split("\n\n"):
        if para.lstrip().startswith("Mask:"):
            return " ".join(line.strip() for line in para.splitlines())
    raise LookupError(f"{cls.__name__} has no Mask: line")


def sentence_ids(batch: int, steps: int) -> Tensor:
    """Ids (B, T) of ``TEXT``: sample b starts 3*b words in and wraps around, so words repeat within a sample."""
    idx = (3 * torch.arange(batch).unsqueeze(1) + torch.arange(steps).unsqueeze(0)) % len(TEXT)  # (B, T)
    lookup = torch.tensor([WORDS.index(w) for w in TEXT])
    return lookup[idx]  # (B, T)


LIMITS = (8, 40, 32)  # the largest B, T and C that still make a readable picture


def check_shape(shape: object) -> tuple[int, int, int]:
    """A (B, T, C) of three positive ints, small enough to draw (``LIMITS``)."""
    expected = "three positive ints B,T,C such as 2,6,8, with B <= {}, T <= {}, C <= {}".format(*LIMITS)
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
    return f"survivors x 1/(1-p) = {1 / (1 - p):.3g}"


def _words(ids: Tensor) -> list[str]:
    return [WORDS[int(i)] for i in ids]


def _sequence_panel(variant: str, x: Tensor, ids: Tensor, p: float, g: torch.Generator) -> Panel:
    B, T, C = x.shape
    if variant in ("dropout", "spatial", "token"):
        cls = {"dropout": Dropout, "spatial": SpatialDropout1D, "token": TokenDropout}[variant]
        layer = cls(p)
        keep = layer.sample_mask(x, generator=g).expand(B, T, C).bool()  # (B, T, C)
        title = {"dropout": "Dropout", "spatial": "SpatialDropout1D", "token": "TokenDropout"}[variant]
        title = f"{title}({p}) after the embedding"
        scale = _scale(p)
    elif variant == "word":
        cls = WordDropout
        layer = WordDropout(p, unk_id=WORDS.index("<unk>"), padding_idx=0)
        keep = layer.sample_mask(ids, generator=g).unsqueeze(-1).expand(B, T, C)  # (B, T) -> (B, T, C)
        title = f"WordDropout({p}, unk_id=1) before the embedding"
        scale = "a dropped word becomes <unk>; nothing is rescaled"
    else:
        cls = Embedding
        mode = variant.split("-")[1]
        layer = Embedding(len(WORDS), C, padding_idx=0, dropout=p, dropout_mode=mode)
        keep = layer.sample_mask(ids, generator=g).bool().unsqueeze(-1).expand(B, T, C)  # (B, T) -> (B, T, C)
        title = f"Embedding(dropout={p}, dropout_mode={mode!r})"
        scale = _scale(p)
    grids = [
        Grid(f"sample {b}", keep[b].T.contiguous(), "channel", "time step", (C, T), _words(ids[b])) for b in range(B)
    ]
    return Panel(variant, title, scale, mask_line(cls), grids)


def _dropconnect_panel(C: int, p: float, g: torch.Generator) -> Panel:
    out = max(2, C // 2)
    layer = DropConnect(nn.Linear(C, out), p, names=("weight",))
    keep = layer.sample_masks(generator=g)["weight"].bool()  # (out, C)
    grid = Grid(f"Linear({C}, {out}).weight", keep, "output unit", "input unit", (out, C))
    return Panel("dropconnect", f"DropConnect(Linear({C}, {out}), {p})", _scale(p), mask_line(DropConnect), [grid])


def _or_ones(mask: Tensor | None, shape: tuple[int, ...]) -> Tensor:
    """A layer with p = 0 draws no mask: everything is kept."""
    return torch.ones(shape) if mask is None else mask


def _recurrent_panel(variant: str, x: Tensor, p: float, g: torch.Generator) -> Panel:
    """Sample 0 of an LSTM (C -> H = max(2, C // 2)) over T steps; the draws: the LSTM's masks, then the others'."""
    B, T, C = x.shape
    H = max(2, C // 2)
    h = torch.zeros(B, T, H)  # the LSTM's output, for the output masks' shapes
    gate_cols = "gate i f g o"
    G = 4
    if variant == "naive":
        lstm = LSTM(C, H, dropout=p, variational=p == 0)  # p = 0: no mask either way (and no warning)
        m = lstm.sample_masks(x, generator=g)
        m.input[0][0] = _or_ones(m.input[0][0], (B, T, C))
        out_keep = Dropout(p).sample_mask(h, generator=g)  # (B, T, H)
        x_keep = [m.input[0][0][0, t].unsqueeze(1) for t in range(T)]  # (C, 1) per step
        h_keep = [None] * T
        y_keep = [out_keep[0, t].unsqueeze(1) for t in range(T)]  # (H, 1)
        title = f"naive (Zaremba): LSTM(dropout={p}, variational=False) + Dropout({p}) on h_t"
        caption = (
            "Mask: input (B, T, C) and output (B, T, H), redrawn at every step; nothing on h(t-1). A different "
            "pattern at each step."
        )
        x_cols, x_shape = "", (C, 1)
    elif variant == "variational":
        lstm = LSTM(C, H, dropout=p, recurrent_dropout=p)
        m = lstm.sample_masks(x, generator=g)
        m.input[0][0] = _or_ones(m.input[0][0], (G, B, C))
        m.recurrent[0][0] = _or_ones(m.recurrent[0][0], (G, B, H))
        out_keep = SpatialDropout1D(p).sample_mask(h, generator=g)  # (B, 1, H)
        x_keep = [m.input[0][0][:, 0].T] * T  # (G, B, C) -> (C, G), the same at every step
        h_keep = [m.recurrent[0][0][:, 0].T] * T  # (G, B, H) -> (H, G)
        y_keep = [out_keep[0, 0].unsqueeze(1)] * T  # (H, 1)
        title = f"variational (Gal, Keras): LSTM(dropout={p}, recurrent_dropout={p}) + SpatialDropout1D({p}) on h_t"
        caption = (
            "Mask: input (4, B, C) and recurrent (4, B, H), one per gate, output (B, 1, H); drawn once per sequence "
            "and repeated at every step."
        )
        x_cols, x_shape = gate_cols, (C, G)
    else:
        lstm = LSTM(C, H, weight_dropout=p)
        m = lstm.sample_masks(x, generator=g)
        m.weight[0][0] = _or_ones(m.weight[0][0], (G * H, H))
        in_keep = SpatialDropout1D(p).sample_mask(x, generator=g)  # (B, 1, C)
        out_keep = SpatialDropout1D(p).sample_mask(h, generator=g)  # (B, 1, H)
        x_keep = [in_keep[0, 0].unsqueeze(1)] * T  # (C, 1)
        h_keep = [m.weight[0][0]] * T  # (4H, H): gate unit down (i, f, g, o blocks), h(t-1) unit across
        y_keep = [out_keep[0, 0].unsqueeze(1)] * T
        title = f"weight drop (AWD-LSTM): LSTM(weight_dropout={p}), LockedDropout({p}) on x_t and h_t"
        caption = (
            "Mask: weight_hh (4H, H), shared by every sample and step; locked input (B, 1, C) and output (B, 1, H); "
            "all drawn once per call."
        )
        x_cols, x_shape = "", (C, 1)
    grids = []
    for t in range(T):
        gates = list("ifgo") if x_cols else None
        grids.append(Grid("x", x_keep[t].bool(), "input unit", x_cols, x_shape, gates, step=t))
        if variant == "weight-drop":
            grids.append(Grid("W_hh", h_keep[t].bool(), "gate unit (i, f, g, o blocks)", "h(t-1) unit", (G * H, H),
                              step=t))  # fmt: skip
        else:
            grids.append(Grid("h(t-1)", None if h_keep[t] is None else h_keep[t].bool(), "hidden unit", gate_cols,
                              (H, G), list("ifgo"), step=t))  # fmt: skip
        grids.append(Grid("out", y_keep[t].bool(), "hidden unit", "", (H, 1), step=t))
    return Panel(variant, title, _scale(p), caption, grids)


def sample(
    shape: tuple[int, int, int] = (2, 6, 8), p: float = 0.5, seed: int = 0, variants: tuple[str, ...] = VARIANTS
) -> list[Panel]:
    """The panels of ``variants`` for an input of ``shape`` (B, T, C), drawn with the layers' own samplers.

    Variant k of ``VARIANTS`` uses ``torch.Generator().manual_seed(seed + k)``. Its draws, in order: the layer's
    ``sample_mask`` (sequence variants: on a (B, T, C) input, or on the ids of :func:`sentence_ids` for word and
    embedding dropout); DropConnect's ``sample_masks`` on ``Linear(C, max(2, C // 2))``; the recurrent variants
    ``LSTM(C, C, ...).sample_masks(x)``, then naive ``Dropout(p)`` on the (B, T, H) output, variational
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


# --------------------------------------------------------------------------------------------------- drawing
CELL = 0.2  # inches per cell
MAX_WIDTH = 64  # cells: layer panels flow left to right and wrap at this width


def _draw_grid(ax, grid: Grid, x0: float, y0: float, variant: str, index: int) -> None:
    """The grid's top-left corner at (x0, y0); one Rectangle per cell, its state in its gid."""
    from matplotlib.patches import Rectangle

    rows, cols = grid.shape
    for r in range(rows):
        for c in range(cols):
            kept = True if grid.keep is None else bool(grid.keep[r, c])
            state = "none" if grid.keep is None else ("kept" if kept else "dropped")
            colour = UNMASKED_COLOUR if grid.keep is None else (KEPT_COLOUR if kept else DROPPED_COLOUR)
            rect = Rectangle((x0 + c, y0 - r - 1), 1, 1, facecolor=colour, edgecolor="#333333", linewidth=0.5,
                             hatch=None if kept else "////")  # fmt: skip
            rect.set_gid(f"cell:{variant}:{index}:{r}:{c}:{state}")
            ax.add_patch(rect)
    if grid.col_labels:
        for c, w in enumerate(grid.col_labels):
            ax.text(x0 + c + 0.5, y0 + 0.2, w, ha="center", va="bottom", fontsize=6, rotation=90 if len(w) > 1 else 0)
        ax.text(x0 + cols / 2, y0 + 2.0, grid.label, ha="center", va="bottom", fontsize=7)
    else:
        ax.text(x0 + cols / 2, y0 + 0.2, grid.label, ha="center", va="bottom", fontsize=7)


def _layout(panel: Panel) -> tuple[list[tuple[float, float]], float, float]:
    """Each grid's offset (x, y down from the panel's grid line) and the panel's grid width and height, in cells."""
    offsets, x = [], 0.0
    last_step = None
    for grid in panel.grids:
        if grid.step is not None and grid.step != last_step and last_step is not None:
            x += 1.5  # a wider gap between time steps
        last_step = grid.step
        offsets.append((x, 0.0))
        x += grid.shape[1] + (1.0 if grid.step is not None else 2.0)
    return offsets, x, max(g.shape[0] for g in panel.grids)


def draw(panels: list[Panel], p: float, seed: int, shape: tuple[int, int, int]):
    """One matplotlib Figure; the cells keep their state in their ``gid``, the panels in ``fig.embdrop_panels``."""
    _extras.need("matplotlib")
    from matplotlib.figure import Figure

    recurrent = all(pl.variant in RECURRENT_VARIANTS for pl in panels)
    # Place the panels: each a slot of width >= 24 cells, flowing left to right (one per row if recurrent).
    rows, x = [[]], 0.0
    for pl in panels:
        _, w, h = _layout(pl)
        width = max(w, 24.0)
        if rows[-1] and (recurrent or x + width > MAX_WIDTH):
            rows.append([])
            x = 0.0
        rows[-1].append((pl, x, width, h))
        x += width + 2.0
    heights = []
    for r in rows:
        words = any(g.col_labels for pl, *_ in r for g in pl.grids)
        steps = any(g.step is not None for pl, *_ in r for g in pl.grids)
        caption = max(len(textwrap.wrap(pl.caption, int(w * 4))) for pl, _, w, _ in r)
        heights.append(2.5 + (2.4 if words else 0.0) + (1.2 if steps else 0.0) + 1.0 + max(h for *_, h in r)
                       + 1.0 + 1.1 * caption)  # fmt: skip
    width = max(max(x + w for _, x, w, _ in r) for r in rows)
    total = 2.0 + sum(heights)
    fig = Figure(figsize=(width * CELL + 0.4, total * CELL + 0.2))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-1, width + 1)
    ax.set_ylim(-total, 0.5)
    ax.set_axis_off()
    what = "an LSTM unrolled over T steps (sample 0, H = C // 2)" if recurrent else "one grid per sample"
    ax.text(0, 0, f"What each mask drops: {what}; (B, T, C) = {shape}, p = {p}, seed = {seed}", fontsize=9,
            va="top", fontweight="bold")  # fmt: skip
    ax.text(0, -1.0, "filled: kept;  white, hatched: dropped;  grey: no mask", fontsize=7.5, va="top")
    y = -2.2
    for r, height in zip(rows, heights, strict=True):
        for pl, x, w, h in r:
            ax.text(x, y, pl.title, fontsize=8, va="top", fontweight="bold")
            ax.text(x, y - 1.0, pl.scale, fontsize=7, va="top")
            words = any(g.col_labels for g in pl.grids)
            top = y - 2.5 - (2.4 if words else 0.0) - (1.2 if recurrent else 0.0) - 0.5
            offsets, _, _ = _layout(pl)
            last_step = None
            for k, (grid, (dx, _)) in enumerate(zip(pl.grids, offsets, strict=True)):
                if grid.step is not None and grid.step != last_step:
                    ax.text(x + dx, top + (3.4 if words else 1.5), f"t = {grid.step}", fontsize=7, va="bottom",
                            color="#444444")  # fmt: skip
                    last_step = grid.step
                _draw_grid(ax, grid, x + dx, top, pl.variant, k)
            caption = textwrap.fill(pl.caption, int(w * 4))
            ax.text(x, top - h - 0.8, caption, fontsize=6.5, va="top", style="italic", color="#333333")
        y -= height
    fig.embdrop_panels = panels  # the data the picture was drawn from
    return fig


def write(
    out: str | Path,
    shape: tuple[int, int, int] = (2, 6, 8),
    p: float = 0.5,
    seed: int = 0,
    variants: tuple[str, ...] = VARIANTS,
    formats: tuple[str, ...] = FORMATS,
) -> list[Path]:
    """Sample and draw; write ``masks-layers.*`` and/or ``masks-recurrent.*`` into ``out``; return the paths."""
    from embdrop._io import atomic_write

    shape = check_shape(shape)
    p = _checks.probability("p", p)
    variants = check_variants(variants)
    for f in formats:
        _checks.choice("format", f, FORMATS)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise _checks.invalid("--out", "a directory (new or existing)", repr(str(out)))
    _extras.need("matplotlib")
    figures = []
    for name, group in (("masks-layers", LAYER_VARIANTS), ("masks-recurrent", RECURRENT_VARIANTS)):
        chosen = tuple(v for v in variants if v in group)
        if chosen:
            figures.append((name, draw(sample(shape, p, seed, chosen), p, seed, shape)))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _checks.invalid("--out", "a directory that can be created and written", f"{str(out)!r} ({e})") from None
    written = []
    for name, fig in figures:
        for f in formats:
            path = out / f"{name}.{f}"
            try:
                atomic_write(path, lambda tmp, fig=fig, f=f: fig.savefig(tmp, format=f, dpi=110))
            except OSError as e:
                raise _checks.invalid("--out", "a writable directory", f"{str(out)!r} ({e})") from None
            written.append(path)
    return written
