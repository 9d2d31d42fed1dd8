"""The report's HTML pieces: its style, and the config and metrics tables of the runs (see
:mod:`embdrop.viz.report`)."""

from __future__ import annotations

import html
import json
import math

from embdrop._io import leaves
from embdrop.viz.report_runs import Run, Source, _count

# ------------------------------------------------------------------------------------------------------ HTML
STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0;
       background: #fafafa; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem 1.25rem 3rem; background: #fff; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; } h2 { font-size: 1.2rem; margin-top: 2rem;
     border-bottom: 1px solid #ddd; padding-bottom: .2rem; } h3 { font-size: 1rem; margin-bottom: .3rem; }
p.note { color: #555; font-size: .9rem; }
table { border-collapse: collapse; font-size: .85rem; margin: .5rem 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; display: block; margin: .5rem 0; }
code { background: #f3f3f3; padding: 0 .2rem; border-radius: 3px; }
details { margin: .5rem 0; }
"""


def _esc(x) -> str:
    return html.escape(str(x))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e-3 or abs(v) >= 1e4 else f"{v:.4f}".rstrip("0").rstrip(".")
    if v is None:
        return "—"
    return str(v)


def config_html(runs: list[Run]) -> str:
    """The config as a table; for several runs the fields they differ in, one column per cell, the rest folded."""
    flat = [leaves(r.config) for r in runs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    differ = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1]
    same = [k for k in keys if k not in differ]
    if len(runs) == 1:
        rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(_fmt(flat[0].get(k)))}</td></tr>" for k in keys)
        return f'<table id="config-table"><tr><th>field</th><th>value</th></tr>{rows}</table>'
    groups: dict[str, list[int]] = {}
    for i in range(len(runs)):  # one column per cell where a compare's seeds differ only in train.seed
        sig = json.dumps({k: flat[i].get(k) for k in differ if k != "train.seed"}, sort_keys=True)
        groups.setdefault(sig, []).append(i)
    cols = [(runs[g[0]].cell or runs[g[0]].name, g) for g in groups.values()]
    head = "".join(f"<th>{_esc(name)}{'' if len(g) == 1 else f' ({len(g)} runs)'}</th>" for name, g in cols)
    body = ""
    for k in differ:
        vals = "".join(f"<td>{_esc(', '.join(dict.fromkeys(_fmt(flat[i].get(k)) for i in g)))}</td>" for _, g in cols)
        body += f"<tr><th>{_esc(k)}</th>{vals}</tr>"
    common = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(_fmt(flat[0].get(k)))}</td></tr>" for k in same)
    return (
        f'<table id="config-table"><tr><th>field (where the runs differ)</th>{head}</tr>{body}</table>'
        f"<details><summary>{len(same)} fields the same in every run</summary><table>{common}</table></details>"
    )


def metrics_html(sources: list[Source]) -> str:
    """Test metrics: per compare cell mean ± std [95% interval]; per run the test metrics and the best epoch."""
    from embdrop.stats import base_metric, interval

    parts = []
    for src in sources:
        if src.compare_rows:
            rows = src.compare_rows
            keys = [k for k in rows[0] if k not in ("cell", "seed", "best_epoch", "seconds_per_epoch")]
            cells = list(dict.fromkeys(r["cell"] for r in rows))
            n = len([r for r in rows if r["cell"] == cells[0]])
            head = "".join(f"<th>test {_esc(k)}</th>" for k in keys)
            body = ""
            for c in cells:
                tds = ""
                for k in keys:
                    mean, std, lo, hi = interval([r[k] for r in rows if r["cell"] == c])
                    tds += f'<td class="num">{mean:.4f} ± {std:.4f} [{lo:.4f}, {hi:.4f}]</td>'
                body += f"<tr><th>{_esc(c)}</th>{tds}</tr>"
            metric = base_metric({k: rows[0][k] for k in keys})[0]
            parts.append(
                f"<h3>{_esc(src.path.name)}: {_count(len(cells), 'cell')} x {_count(n, 'seed')}</h3>"
                f'<table class="compare-table"><tr><th>cell</th>{head}</tr>{body}</table>'
                f'<p class="note">mean ± std [95% interval of the mean] over the seeds (Student\'s t), as '
                f"<code>embdrop compare</code> computes them; the recipe's metric is {_esc(metric)}. Two cells "
                "differ beyond seed noise only where their intervals do not overlap.</p>"
            )
        runs = [r for r in src.runs if not src.compare_rows]
        if runs:
            keys = list(dict.fromkeys(k for r in runs if r.summary for k in r.summary["test"]))
            head = "".join(f"<th>test {_esc(k)}</th>" for k in keys)
            body = ""
            for r in runs:
                if r.summary:
                    tds = "".join(f'<td class="num">{r.summary["test"].get(k, math.nan):.4f}</td>' for k in keys)
                    extra = (f'<td class="num">{r.summary["best_epoch"]}</td>'
                             f'<td class="num">{r.summary["seconds_per_epoch"]:.1f}</td>'
                             f'<td class="num">{r.summary["parameters"]:,}</td>')  # fmt: skip
                else:
                    tds = "".join("<td>—</td>" for _ in keys)
                    extra = f"<td colspan=3>not finished: {len(r.history)} epochs so far</td>"
                body += f"<tr><th>{_esc(r.name)}</th>{tds}{extra}</tr>"
            parts.append(f'<table class="run-table"><tr><th>run</th>{head}<th>best epoch</th><th>s / epoch</th>'
                         f"<th>parameters</th></tr>{body}</table>")  # fmt: skip
    return "".join(parts)
