"""``embdrop masks``: pictures of the keep-masks embdrop's layers really sample.

Every picture is drawn the way a user prints the tensor: ``x[0]`` of a (B, T, C) output has one row per time step
(one word's vector) and one column per channel. So a grid has time down and channels across; SpatialDropout1D
blanks whole columns, TokenDropout and word or embedding dropout whole rows.

Figure 1, "rows or columns?" (``LAYER_VARIANTS``): for a (B, T, C) input, one panel per dropout variant, one (T, C)
grid per sample with its words on the left; a kept cell is filled, a dropped one white and hatched (so the picture
reads in grey print). DropConnect has one grid, its weight matrix as ``Linear.weight`` prints it (out rows, in
columns).

Figure 2, recurrent dropout unrolled (``RECURRENT_VARIANTS``): an LSTM over T steps for sample 0, one row band per
step, one column per variant. At each step: the masks on the input x_t (one row per gate where the masks are per
gate), on the recurrent state h(t-1) and on the output h_t. Naive (Zaremba) draws new input and output masks at
every step and none on h(t-1); variational (Gal & Ghahramani, Keras' ``dropout`` + ``recurrent_dropout``) repeats
the same masks at every step; weight drop (AWD-LSTM) drops entries of ``weight_hh``, drawn as ``W_hh^T`` (H, 4H),
the matrix h(t-1) multiplies (h(t-1) units down, gate units across), the same for every step and sample, with
locked dropout on the input and the output. This is Gal & Ghahramani's Figure 1, from masks.

Every mask comes from the layer's own ``sample_mask``/``sample_masks``: variant k of ``VARIANTS`` draws from a
generator seeded with ``seed + k``, in the order written in :func:`sample`, so a test (or a reader) can draw the
same masks again. Drawing keeps the data: every cell is a rectangle whose ``gid`` names the variant, the grid, the
cell and whether it was kept, and SVG output carries these as element ids (and its text as text), so the committed
pictures in ``docs/img`` are checked cell by cell against the code.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from embdrop import _checks, _extras
from embdrop.viz.mask_panels import (
    DROPPED_COLOUR,
    KEPT_COLOUR,
    UNMASKED_COLOUR,
    Grid,
    Panel,
    check_shape,
    check_variants,
    sample,
)
from embdrop.viz.names import DEFAULT_P, DEFAULT_SEED, DEFAULT_SHAPE, FORMATS, LAYER_VARIANTS, RECURRENT_VARIANTS
from embdrop.viz.names import MASK_VARIANTS as VARIANTS

# --------------------------------------------------------------------------------------------------- drawing
CELL = 0.2  # inches per cell
MAX_WIDTH = 64  # cells: layer panels flow left to right and wrap at this width
GAP = 1.0  # cells between two grids
# Rough characters per cell at each font size, to wrap text to a panel's width.
TITLE_CHARS, SCALE_CHARS, CAPTION_CHARS = 3.0, 3.6, 4.0


def _gutter(grid: Grid) -> float:
    """Room on a grid's left for its row labels (the words, the gates)."""
    if not grid.row_labels:
        return 0.0
    return 0.8 + 0.45 * max(len(s) for s in grid.row_labels)


def _draw_grid(ax, grid: Grid, x0: float, y0: float, variant: str, index: int, label: bool = True) -> None:
    """The grid's top-left corner at (x0, y0) (y grows upward); one Rectangle per cell, its state in its gid."""
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
    for r, w in enumerate(grid.row_labels or []):
        ax.text(x0 - 0.3, y0 - r - 0.5, w, ha="right", va="center", fontsize=6)
    for c, w in enumerate(grid.col_labels or []):
        if w and label:
            ax.text(x0 + c + 0.5, y0 + 0.2, w, ha="center", va="bottom", fontsize=6)
    if label:
        ax.text(x0, y0 + (1.1 if grid.col_labels else 0.2), grid.label, ha="left", va="bottom", fontsize=7)


def _text_block(ax, x: float, y: float, lines: list[tuple[str, float, dict]]) -> float:
    """Write wrapped lines from (x, y) down; return the y below them. Each item: text, line height, text style."""
    for text, height, style in lines:
        ax.text(x, y, text, va="top", **style)
        y -= height * (text.count("\n") + 1)
    return y


def _header(panel: Panel, width: float) -> list[tuple[str, float, dict]]:
    return [
        (textwrap.fill(panel.title, int(width * TITLE_CHARS)), 1.0, {"fontsize": 8, "fontweight": "bold"}),
        (textwrap.fill(panel.scale, int(width * SCALE_CHARS)), 0.9, {"fontsize": 7}),
    ]


def _caption(panel: Panel, width: float) -> tuple[str, float, dict]:
    style = {"fontsize": 6.5, "style": "italic", "color": "#333333"}
    return (textwrap.fill(panel.caption, int(width * CAPTION_CHARS)), 0.85, style)


def _lines_height(lines: list[tuple[str, float, dict]]) -> float:
    return sum(h * (t.count("\n") + 1) for t, h, _ in lines)


def _legend(panels: list[Panel]) -> str:
    legend = "filled: kept;  white, hatched: dropped"
    if any(g.keep is None for pl in panels for g in pl.grids):
        legend += ";  grey: no mask at all"
    return legend


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * CELL + 0.4, height * CELL + 0.2))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-1, width + 1)
    ax.set_ylim(-height, 0.5)
    ax.set_axis_off()
    return fig, ax


def _draw_layers(panels: list[Panel], p: float, seed: int, shape: tuple[int, int, int]):
    """Figure 1: panels flowing left to right; in each, one (T, C) grid per sample, side by side."""
    placed, rows, x = [], [[]], 0.0
    for pl in panels:
        widths = [_gutter(g) + g.shape[1] for g in pl.grids]
        width = max(sum(widths) + GAP * (len(widths) - 1), 24.0)
        if rows[-1] and x + width > MAX_WIDTH:
            rows.append([])
            x = 0.0
        rows[-1].append((pl, x, width))
        x += width + 2.0
    heights = []
    for r in rows:
        head = max(_lines_height(_header(pl, w)) for pl, _, w in r)
        grid = max(g.shape[0] for pl, *_ in r for g in pl.grids)
        caption = max(_lines_height([_caption(pl, w)]) for pl, _, w in r)
        heights.append(head + 1.6 + grid + 0.8 + caption + 1.2)
        placed.append((head, grid))
    width = max(x + w for r in rows for _, x, w in r)
    fig, ax = _figure(width, 3.2 + sum(heights))
    B, T, C = shape
    _text_block(ax, 0, 0, [
        (f"Which entries each dropout drops: (B, T, C) = {shape}, p = {p}, seed = {seed}", 1.1,
         {"fontsize": 9, "fontweight": "bold"}),
        ("Each grid is one sample x[b] as PyTorch prints it: one row per time step (its word on the left), one column "
         "per channel.", 0.9, {"fontsize": 7.5}),
        (_legend(panels), 0.9, {"fontsize": 7.5}),
    ])  # fmt: skip
    y = -3.4
    for r, height, (head, grid_h) in zip(rows, heights, placed, strict=True):
        for pl, x, w in r:
            _text_block(ax, x, y, _header(pl, w))
            top = y - head - 1.6
            dx = 0.0
            for k, grid in enumerate(pl.grids):
                dx += _gutter(grid)
                _draw_grid(ax, grid, x + dx, top, pl.variant, k)
                dx += grid.shape[1] + GAP
            _text_block(ax, x, top - grid_h - 0.8, [_caption(pl, w)])
        y -= height
    return fig


def _draw_recurrent(panels: list[Panel], p: float, seed: int, shape: tuple[int, int, int]):
    """Figure 2: one column per variant, one row band per time step; in a band the grids of that step."""
    steps = sorted({g.step for pl in panels for g in pl.grids})
    by_step = [{t: [(k, g) for k, g in enumerate(pl.grids) if g.step == t] for t in steps} for pl in panels]
    columns, x = [], 3.0  # room on the left for "t = k"
    for pl, grids in zip(panels, by_step, strict=True):
        band = max(sum(_gutter(g) + g.shape[1] + GAP for _, g in gs) - GAP for gs in grids.values())
        width = max(band, 24.0)
        columns.append((pl, x, width))
        x += width + 2.0
    width = x - 2.0
    head = max(_lines_height(_header(pl, w) + [_caption(pl, w)]) for pl, _, w in columns)
    labels = 1.1 + (1.0 if any(g.col_labels for pl in panels for g in pl.grids) else 0.0)
    band_h = [max(g.shape[0] for grids in by_step for _, g in grids[t]) for t in steps]
    total = 3.4 + head + 0.6 + labels + sum(h + 0.8 for h in band_h)
    fig, ax = _figure(width, total)
    _text_block(ax, 0, 0, [
        (f"Recurrent dropout, unrolled: an LSTM over T = {shape[1]} steps (sample 0, C = {shape[2]}, "
         f"H = {max(2, shape[2] // 2)}), p = {p}, seed = {seed}", 1.1, {"fontsize": 9, "fontweight": "bold"}),
        ("One row band per time step. In each: the mask on the input x_t (one row per gate where the masks are per "
         "gate), on h(t-1) and on the output h_t, each a row of units.", 0.9, {"fontsize": 7.5}),
        (_legend(panels), 0.9, {"fontsize": 7.5}),
    ])  # fmt: skip
    y = -3.4
    for pl, x, w in columns:
        _text_block(ax, x, y, _header(pl, w) + [_caption(pl, w)])
    top = y - head - 0.6 - labels
    for t, h in zip(steps, band_h, strict=True):
        ax.text(0, top - 0.5, f"t = {t}", fontsize=7, va="center", color="#444444")
        for (pl, x, _), grids in zip(columns, by_step, strict=True):
            dx = 0.0
            for k, grid in grids[t]:
                dx += _gutter(grid)
                _draw_grid(ax, grid, x + dx, top, pl.variant, k, label=t == steps[0])
                dx += grid.shape[1] + GAP
        top -= h + 0.8
    return fig


def draw(panels: list[Panel], p: float, seed: int, shape: tuple[int, int, int]):
    """One matplotlib Figure; the cells keep their state in their ``gid``, the panels in ``fig.embdrop_panels``.

    Panels of the recurrent variants make Figure 2 (steps down, one column per variant), any others Figure 1.
    """
    _extras.need("matplotlib")
    recurrent = all(pl.variant in RECURRENT_VARIANTS for pl in panels)
    fig = (_draw_recurrent if recurrent else _draw_layers)(panels, p, seed, shape)
    fig.embdrop_panels = panels  # the data the picture was drawn from
    return fig


def save(fig, path: str | Path, fmt: str) -> None:
    """Write ``fig`` as ``fmt``: the same figure gives the same bytes (no date; SVG keeps its text as text)."""
    import matplotlib

    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "embdrop"}):
        fig.savefig(path, format=fmt, dpi=110, metadata=metadata)


def write(
    out: str | Path,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    p: float = DEFAULT_P,
    seed: int = DEFAULT_SEED,
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
                atomic_write(path, lambda tmp, fig=fig, f=f: save(fig, tmp, f))
            except OSError as e:
                raise _checks.invalid("--out", "a writable directory", f"{str(out)!r} ({e})") from None
            written.append(path)
    return written
