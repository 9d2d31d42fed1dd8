import csv
import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from matplotlib.image import imread
from rich.console import Console

from embdrop import recipes
from embdrop.cli import main
from embdrop.stats import interval
from embdrop.viz import masks as M
from embdrop.viz import report as R
from embdrop.viz import report_runs

FAST = ["train.epochs=2", "data.maxlen=40", "train.batch_size=64", "model.filters=16", "model.hidden=8"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def quiet():
    return Console(file=open("/dev/null", "w"), width=120)  # noqa: SIM115


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A compare-style directory (2 cells x 2 seeds, as 'embdrop compare' lays it out) and one single run."""
    root = tmp_path_factory.mktemp("runs")
    cells = {"none": ["model.dropout=0"], "spatial": ["model.dropout=0", "model.spatial_dropout=0.3"]}
    rows = []
    for cell, sets in cells.items():
        for seed in range(2):
            s = recipes.train("reviews-cnn-lstm", FAST + sets + [f"train.seed={seed}"],
                              root / "grid" / cell / f"seed-{seed}", console=quiet())  # fmt: skip
            rows.append({"cell": cell, "seed": seed, **s.test, "best_epoch": s.best_epoch,
                         "seconds_per_epoch": s.seconds_per_epoch})  # fmt: skip
    with open(root / "grid" / "runs.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    recipes.train("reviews-cnn-lstm", FAST, root / "single", console=quiet())
    return root, rows


@pytest.mark.slow  # trains runs and a compare, then renders in Chromium
def test_report_holds_config_curves_intervals_masks_and_embedding(runs, tmp_path, capsys):
    root, rows = runs
    out = tmp_path / "report.html"
    assert main(["report", str(root / "grid"), str(root / "single"), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "report: reading 2/2" in err and "report: embedding" in err  # progress lines
    page = out.read_text()
    for ident in ("config", "curves", "metrics", "masks", "embedding", "curves-img", "config-table"):
        assert f'id="{ident}"' in page
    assert "http://" not in page and "https://" not in page and "<script" not in page  # self-contained
    # the config table shows the fields the runs differ in, one column per compare cell
    config = page[page.index('id="config-table"') : page.index("</table>", page.index('id="config-table"'))]
    assert "model.spatial_dropout" in config and "spatial (2 runs)" in config and "single" in config
    # the compare table shows compare's own statistics
    acc = [r["accuracy"] for r in rows if r["cell"] == "spatial"]
    mean, std, lo, hi = interval(acc)
    assert f"{mean:.4f} ± {std:.4f} [{lo:.4f}, {hi:.4f}]" in page
    # mask pictures of the variants these runs use: Dropout (the single run) and SpatialDropout1D (a cell)
    assert 'id="mask-dropout"' in page and 'id="mask-spatial"' in page and 'id="mask-variational"' not in page
    # every rate, with what the field means (the recipe's own words, as embdrop config prints them)
    assert "<code>model.spatial_dropout</code> = 0.3: SpatialDropout1D after the embedding (whole channels)" in page
    # nearest neighbours from the learned embedding
    assert "nearest neighbours (cosine)" in page and re.search(r"\(0\.\d\d\)|\(-0\.\d\d\)|\(1\.00\)", page)


def test_dropout_variants_follow_the_recipes_configs():
    def variants(recipe, *sets):
        return dict(R.dropout_variants(dataclasses.asdict(recipes.resolve(recipe, list(sets)))))

    assert variants("reviews-lstm") == {"dropout": 0.25, "variational": 0.5}
    assert variants("ptb-lm", "variant=naive") == {"naive": 0.5}
    naive = variants("reviews-lstm", "model.lstm_variational=false", "model.recurrent_dropout=0")
    assert naive == {"dropout": 0.25, "naive": 0.5}
    assert set(variants("ptb-lm", "variant=variational")) == {"spatial", "embedding-sample", "variational"}
    assert set(variants("ptb-lm", "variant=awd")) >= {"weight-drop", "embedding-batch", "spatial"}
    assert variants("ptb-lm", "variant=none") == {}
    assert set(variants("reviews-cnn-lstm")) == {"dropout"}
    assert all(v in M.VARIANTS for recipe in recipes.RECIPES for v in variants(recipe))
    # no picture of word masks for dropout that acts on no sequence: a table's row, Kim's CNN's pooled features
    for table in ("flights-entity", "tabular-entity", "movielens-mf"):
        assert variants(table) == {}
        fields = dict(R.dropout_fields(dataclasses.asdict(recipes.resolve(table, []))))
        assert fields and all(f.startswith("model.") and "dropout" in f for f in fields)
    assert variants("text-cnn") == {}  # its dropout is on the pooled features
    assert variants("text-cnn", "model.embedding_dropout=0.1") == {"embedding-sample": 0.1}


def test_pca_labels_never_overlap_and_every_word_keeps_its_point():
    coords = torch.tensor([[0.0, 0.0], [0.001, 0.001], [1.0, 1.0], [0.5, 0.5], [0.502, 0.5]])
    placed = R.label_without_overlap(coords, ["good", "great", "bad", "tea", "teas"])
    assert [w for _, w in placed] == ["good", "bad", "tea"]  # the later word at the same spot is left out


@pytest.mark.slow  # trains runs and a compare, then renders in Chromium
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_chromium_renders_the_report(runs, tmp_path):
    root, _ = runs
    out = tmp_path / "report.html"
    assert main(["report", str(root / "grid"), str(root / "single"), "--out", str(out)]) == 0
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,3000"]  # fmt: skip
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", out.as_uri()], check=True, capture_output=True, timeout=120)
    dom = subprocess.run([*flags, "--dump-dom", out.as_uri()], check=True, capture_output=True, text=True,
                         timeout=120).stdout  # fmt: skip
    for ident in ("config", "curves", "metrics", "masks", "embedding", "curves-img", "mask-dropout"):
        assert f'id="{ident}"' in dom, ident
    assert dom.count("<img") >= 4 and dom.count("<tr>") > 10
    pixels = imread(shot)[..., :3]  # (H, W, 3) in [0, 1]
    assert pixels.std() > 0.05  # not a blank page
    # the mask pictures were decoded and painted: their "kept" blue is on the screen
    kept = tuple(int(M.KEPT_COLOUR[i : i + 2], 16) / 255 for i in (1, 3, 5))
    near = (abs(pixels - kept) < 0.03).all(axis=-1)
    assert near.sum() > 500


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    # a finished run written by embdrop train, committed as a test fixture: no training here
    single = Path(__file__).parents[1] / "recipes" / "fixtures" / "run-before-registry"
    out = tmp_path / "r.html"
    empty = tmp_path / "empty"
    empty.mkdir()
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.json").write_text((single / "config.json").read_text())
    unfinished = tmp_path / "unfinished"
    shutil.copytree(single, unfinished / "none" / "seed-0")
    cases = [
        ([str(unfinished)], "no runs.csv yet: the compare has not finished"),
        ([str(tmp_path / "missing")], "argument 'RUN_DIR': expected an existing run or compare directory"),
        ([str(empty)], "expected a run directory of 'embdrop train' (with config.json)"),
        ([str(half)], "the run has not finished an epoch"),
        ([str(single), "--out", str(tmp_path / "no" / "r.html")], "argument '--out': expected an HTML"),
        ([str(single), "--out", str(tmp_path)], "argument '--out'"),
    ]
    for args, message in cases:
        argv = ["report", *args] if "--out" in args else ["report", *args, "--out", str(out)]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert message in err[-1] and err[-1].startswith("embdrop report: error:"), err
        assert not out.exists() and not (tmp_path / "no").exists()


def test_a_compare_cell_is_named_as_compare_names_it(tmp_path):
    """A --vary cell lives in a folder such as "kind-hash" but is "model.kind=hash" in runs.csv and table.md: the
    report's every table uses the latter, read from the compare's plan."""
    import json

    plan = {"runs": [{"cell": "model.kind=hash", "seed": 0, "folder": "kind-hash", "overrides": []}]}
    (tmp_path / "compare.json").write_text(json.dumps(plan))
    assert report_runs._cell_names(tmp_path) == {"kind-hash": "model.kind=hash"}
    (tmp_path / "compare.json").write_text("{not json")
    assert report_runs._cell_names(tmp_path) == {}  # no plan: the folder names, as before
