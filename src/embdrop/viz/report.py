"""``embdrop report``: one self-contained HTML page for one run, several runs or a ``compare`` directory.

The page holds the config as a table, the learning curves, the test metrics (with the mean, the standard deviation
and the 95% interval per cell that ``compare`` computes), the pictures of the masks of the dropout variants the model
uses, and, for text models, the learned embedding: nearest neighbours of a few frequent words and a 2-D PCA map of
the most frequent words. Everything is inline (images as data URIs, styles in the page, no script), so the file can
be mailed or opened offline. Sections have stable ids (``config``, ``curves``, ``metrics``, ``masks``,
``embedding``) so tests and links can find them.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from embdrop import _checks, _extras
from embdrop.viz import masks as masks_mod
from embdrop.viz.report_html import STYLE, _esc, _fmt, config_html, metrics_html
from embdrop.viz.report_runs import Run, _count, read_source

NEIGHBOUR_WORDS = 6  # frequent words whose nearest neighbours are listed
PCA_WORDS = 80  # the most frequent words placed on the PCA map
STOP = {"the", "a", "an", "and", "or", "but", "of", "to", "in", "on", "at", "for", "with", "is", "are", "was", "were",
        "be", "it", "its", "this", "that", "these", "those", "i", "you", "he", "she", "we", "they", "my", "your",
        "his", "her", "our", "their", "not", "no", "as", "by", "from", "have", "has", "do", "if"}  # fmt: skip


# ------------------------------------------------------------------------------------------------------ figures
def _figure(width: float, height: float):
    _extras.need("matplotlib")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _img(fig, ident: str, alt: str) -> str:
    """A figure as an inline SVG data URI in an <img>, so ids inside one figure never clash with another's."""
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img id="{ident}" alt="{html.escape(alt)}" src="data:image/svg+xml;base64,{data}">'


def _metric(history: list[dict]) -> str | None:
    keys = [k[len("valid_") :] for k in history[0] if k.startswith("valid_") and k != "valid_loss"]
    return keys[0] if keys else None


def curves_figure(runs: list[Run]):
    """Loss and the recipe's metric per epoch, train (thin) and validation (thick), one colour per run or cell."""
    from matplotlib.ticker import MaxNLocator

    metric = _metric(runs[0].history)
    keys = ["loss"] + ([metric] if metric else [])
    fig = _figure(4.6 * len(keys), 3.4)
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    cells = list(dict.fromkeys(r.cell or r.name for r in runs))
    colours = {c: f"C{i % 10}" for i, c in enumerate(cells)}
    for ax, key in zip(axes, keys, strict=True):
        labelled = set()
        for r in runs:
            label = r.cell or r.name
            epochs = [h["epoch"] for h in r.history]
            for split, lw, style in (("train", 0.8, ":"), ("valid", 1.8, "-")):
                values = [h.get(f"{split}_{key}", math.nan) for h in r.history]
                tag = f"{label} ({'validation' if split == 'valid' else 'train'})"
                ax.plot(epochs, values, style, color=colours[label], lw=lw, label=None if tag in labelled else tag)
                labelled.add(tag)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 2.5 on the axis
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if len(labels) <= 16:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7, frameon=False,
                   bbox_to_anchor=(0.5, -0.02 - 0.05 * math.ceil(len(labels) / 4)))  # fmt: skip
    fig.tight_layout()
    return fig


TABLE_RECIPES = ("tabular-entity", "flights-entity", "movielens-mf")  # one row of categories per example: no sequence


def dropout_fields(config: dict) -> list[tuple[str, float]]:
    """Every dropout rate of the model that is not zero: (field, p), such as ("model.dropout", 0.5)."""
    m = config.get("model") or {}
    return [(f"model.{k}", float(v)) for k, v in m.items() if "dropout" in k and isinstance(v, (int, float))
            and not isinstance(v, bool) and v > 0]  # fmt: skip


def dropout_variants(config: dict) -> list[tuple[str, float]]:
    """The mask pictures that show the dropout this config uses: (variant of ``embdrop masks``, p).

    The pictures are of masks over a sequence of words, so they are drawn only for dropout that acts on one: none for
    the table recipes (a row of categories), and for ``text-cnn`` none for ``dropout``, which acts on the pooled
    features. :func:`dropout_fields` lists every rate, pictured or not."""
    if config.get("recipe") in TABLE_RECIPES:
        return []
    m = dict(config.get("model") or {})
    if config.get("recipe") == "text-cnn":
        m.pop("dropout", None)
    get = lambda k: float(m.get(k) or 0.0) if isinstance(m.get(k), (int, float)) else 0.0  # noqa: E731
    naive = m.get("variational") is False or m.get("lstm_variational") is False
    out: list[tuple[str, float]] = []
    element = max(get("dropout"), get("conv_dropout"))
    if element > 0:
        out.append(("dropout", element))
    locked = max(get("spatial_dropout"), 0.0 if naive else max(get("input_dropout"), get("output_dropout")))
    if locked > 0:
        out.append(("spatial", locked))
    if get("embedding_dropout") > 0:
        out.append((f"embedding-{m.get('embedding_dropout_mode') or 'sample'}", get("embedding_dropout")))
    recurrent = max(get("lstm_dropout"), get("recurrent_dropout"), get("hidden_dropout"))
    naive_p = max(get("input_dropout"), get("hidden_dropout"), get("output_dropout"), get("lstm_dropout"))
    if naive and naive_p > 0:
        out.append(("naive", naive_p))
    elif recurrent > 0:
        out.append(("variational", recurrent))
    if get("weight_dropout") > 0:
        out.append(("weight-drop", get("weight_dropout")))
    return out


@dataclass
class EmbeddingView:
    """What the report shows of an embedding: the mapped words, their neighbours, 2-D coordinates, variance."""

    words: list[str]
    neighbours: dict[str, list[tuple[str, float]]]
    coords: torch.Tensor  # (N, 2)
    explained: tuple[float, float]


def embedding_view(run: Run) -> EmbeddingView | None:
    """Nearest neighbours and a PCA map of the run's learned (best) embedding, for text runs with a vocabulary."""
    vocab_path, weights_path = run.path / "vocab.json", run.path / "best.safetensors"
    if not vocab_path.is_file() or not weights_path.is_file():
        return None
    from embdrop._io import read_json

    itos = read_json(vocab_path, "a readable vocab.json", argument="RUN_DIR").get("itos") or []
    _extras.need("safetensors")
    from safetensors.torch import load_file

    tensors = load_file(str(weights_path))
    table = next((t for k, t in tensors.items() if k.endswith("embedding.weight") and t.dim() == 2
                  and t.shape[0] == len(itos)), None)  # fmt: skip
    if table is None:
        return None
    table = table.float()
    words = [(i, w) for i, w in enumerate(itos) if not w.startswith("<") and w.isalpha()]
    if len(words) < 10:
        return None
    unit = torch.nn.functional.normalize(table, dim=1)
    chosen = [(i, w) for i, w in words[:300] if w not in STOP and len(w) >= 4][:NEIGHBOUR_WORDS]
    neighbours = {}
    for i, w in chosen:
        sims = unit @ unit[i]  # (V,)
        sims[i] = -2.0
        for j, s in enumerate(itos):
            if s.startswith("<"):
                sims[j] = -2.0
        top = torch.topk(sims, 5)
        neighbours[w] = [(itos[int(j)], float(v)) for v, j in zip(top.values, top.indices, strict=True)]
    ids = torch.tensor([i for i, _ in words[:PCA_WORDS]])
    x = table[ids] - table[ids].mean(dim=0, keepdim=True)  # (N, E), centred
    _, s, v = torch.linalg.svd(x, full_matrices=False)
    coords = x @ v[:2].T  # (N, 2)
    var = s**2 / (s**2).sum()
    explained = (float(var[0]), float(var[1]) if var.numel() > 1 else 0.0)
    return EmbeddingView([w for _, w in words[:PCA_WORDS]], neighbours, coords, explained)


def label_without_overlap(coords: torch.Tensor, words: list[str]) -> list[tuple[tuple[float, float], str]]:
    """The words to write beside their points, most frequent first, leaving out any whose label would overlap one
    already placed (every point stays drawn). Boxes are estimated in axes fractions for the figure's 6.5-point
    labels: 0.009 of the width per character, 0.03 of the height."""
    lo, hi = coords.min(dim=0).values, coords.max(dim=0).values
    unit = (coords - lo) / (hi - lo).clamp_min(1e-12)  # (N, 2) in [0, 1]
    placed: list[tuple[float, float, float, float]] = []
    out = []
    for (u, v), (x, y), w in zip(unit.tolist(), coords.tolist(), words, strict=True):
        box = (u, v, u + 0.009 * len(w) + 0.01, v + 0.03)
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
            continue
        placed.append(box)
        out.append(((x, y), w))
    return out


def pca_figure(view: EmbeddingView, title: str):
    """The words on the first two principal components of their vectors."""
    fig = _figure(7.5, 5.5)
    ax = fig.add_subplot()
    ax.scatter(view.coords[:, 0], view.coords[:, 1], s=6, color="#3b75af")
    for (x, y), w in label_without_overlap(view.coords, view.words):
        ax.annotate(w, (x, y), fontsize=6.5, xytext=(2, 2), textcoords="offset points")
    ax.set_xlabel(f"PC 1 ({view.explained[0]:.0%} of the variance)")
    ax.set_ylabel(f"PC 2 ({view.explained[1]:.0%})")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def build(paths: list[str | Path], log: Callable[[str], None] = lambda s: None, meanings: dict | None = None) -> str:
    """The report's HTML for ``paths`` (run or compare directories); ``meanings`` maps a config field such as
    ``model.dropout`` to its one-line meaning per recipe (``{recipe: {field: meaning}}``, as ``embdrop config``
    shows them), said beside each dropout rate."""
    meanings = meanings or {}
    if not paths:
        raise _checks.invalid("RUN_DIR", "at least one run or compare directory", "nothing")
    sources = []
    for i, p in enumerate(paths, 1):
        log(f"report: reading {i}/{len(paths)}: {p}")
        sources.append(read_source(p))
    runs = [r for s in sources for r in s.runs]
    if not runs:
        raise _checks.invalid("RUN_DIR", "a compare directory with its runs (CELL/seed-N)", repr(str(paths[0])))
    recipes = sorted({str(r.config.get("recipe")) for r in runs})
    title = f"embdrop report: {', '.join(recipes)}"
    out = [f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
           f"content='width=device-width, initial-scale=1'><title>{_esc(title)}</title><style>{STYLE}</style>"
           f"</head><body><main>", f"<h1>{_esc(title)}</h1>"]  # fmt: skip
    names = ", ".join(_esc(s.path) for s in sources)
    out.append(f'<p class="note">{len(runs)} run{"s" * (len(runs) != 1)} from {names}.</p>')

    log("report: config")
    out.append(f'<section id="config"><h2>Config</h2>{config_html(runs)}</section>')

    log(f"report: learning curves of {_count(len(runs), 'run')}")
    note = "thin dotted: training; thick: validation" + ("; one colour per cell" if len(runs) > 1 else "")
    out.append(f'<section id="curves"><h2>Learning curves</h2><p class="note">{note}.</p>'
               f"{_img(curves_figure(runs), 'curves-img', 'learning curves')}</section>")  # fmt: skip

    log("report: metrics")
    out.append(f'<section id="metrics"><h2>Test metrics</h2>{metrics_html(sources)}</section>')

    variants: dict[str, float] = {}
    rates: dict[str, list[float]] = {}
    recipe_of: dict[str, str] = {}  # the first recipe that has the field: its meaning is said
    for r in runs:
        for v, p in dropout_variants(r.config):
            variants.setdefault(v, p)
        for f, p in dropout_fields(r.config):
            rates.setdefault(f, [])
            recipe_of.setdefault(f, str(r.config.get("recipe")))
            if p not in rates[f]:
                rates[f].append(p)
    log(f"report: mask pictures of {_count(len(variants), 'dropout variant')}")
    out.append('<section id="masks"><h2>What the dropout in these models drops</h2>')
    if rates:
        first = runs[0].config.get("recipe")
        said = {f: meanings.get(recipe_of[f], {}).get(f) for f in rates}
        items = "".join(f"<li><code>{_esc(f)}</code> = {', '.join(_fmt(p) for p in ps)}"
                        + (f": {_esc(said[f])}" if said[f] else "") + "</li>" for f, ps in rates.items())  # fmt: skip
        out.append(f'<ul id="dropout-fields">{items}</ul>')
        if not variants:
            out.append(f'<p class="note">No mask picture: the pictures show masks over a sequence of words, and '
                       f"{_esc(first)}'s dropout acts on other tensors, as listed above.</p>")  # fmt: skip
    if variants:
        out.append('<p class="note">The masks embdrop\'s layers sample for a small input (B, T, C) = (2, 8, 8) at '
                   "the rates the runs use (the first run's rate where they differ); filled: kept, white and "
                   "hatched: dropped; each grid is one sample, a row per time step and a column per channel. "
                   "<code>embdrop masks --variant NAME --p P</code> draws them alone."
                   "</p>")  # fmt: skip
        for v, p in variants.items():
            shape, seed = masks_mod.DEFAULT_SHAPE, masks_mod.DEFAULT_SEED
            fig = masks_mod.draw(masks_mod.sample(shape, p, seed, (v,)), p, seed, shape)
            out.append(_img(fig, f"mask-{v}", f"the masks of {v} at p = {p}"))
    elif not rates:
        out.append('<p class="note">These runs use no dropout.</p>')
    out.append("</section>")

    shown = []
    for r in runs:
        if any(s.cell == r.cell for s in shown) and r.cell:
            continue  # one run per compare cell
        shown.append(r)
    views = []
    for r in shown[:4]:
        log(f"report: embedding of {r.name}")
        view = embedding_view(r)
        if view is not None:
            views.append((r, view))
    if views:
        out.append('<section id="embedding"><h2>The learned embedding</h2><p class="note">From the weights of '
                   "the best validation epoch: the nearest neighbours (cosine similarity) of a few frequent words "
                   f"and the {PCA_WORDS} most frequent words on their first two principal components (every word a "
                   "point; a label only where it does not cover another, the more frequent word first)."
                   "</p>")  # fmt: skip
        for r, view in views:
            rows = "".join(
                f"<tr><th>{_esc(w)}</th><td>{_esc(', '.join(f'{n} ({s:.2f})' for n, s in nn))}</td></tr>"
                for w, nn in view.neighbours.items()
            )
            out.append(f"<h3>{_esc(r.name)}</h3><table class='neighbours'><tr><th>word</th>"
                       f"<th>nearest neighbours (cosine)</th></tr>{rows}</table>")  # fmt: skip
            out.append(_img(pca_figure(view, f"{r.name}: PCA of the embedding"), f"pca-{len(views)}", "PCA map"))
        out.append("</section>")
    out.append("</main></body></html>")
    return "\n".join(out)


def write(
    paths: list[str | Path], out: str | Path, log: Callable[[str], None] = lambda s: None, meanings: dict | None = None
) -> Path:
    """Build the report and write it to ``out`` atomically (nothing is left behind on an error)."""
    from embdrop._io import atomic_write

    out = Path(out)
    if out.is_dir() or not out.parent.is_dir():
        raise _checks.invalid("--out", "an HTML file path in an existing directory", repr(str(out)))
    page = build(paths, log, meanings)
    try:
        atomic_write(out, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    except OSError as e:
        raise _checks.invalid("--out", "a writable file path", f"{str(out)!r} ({e})") from None
    return out
