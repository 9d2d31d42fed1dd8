import re
from pathlib import Path

import pytest
import torch
from matplotlib.colors import to_hex
from torch import nn

from embdrop import LSTM, DropConnect, Dropout, Embedding, SpatialDropout1D, TokenDropout, WordDropout
from embdrop.cli import main
from embdrop.viz import mask_panels as panels_mod
from embdrop.viz import masks as M

SHAPE, P, SEED = (2, 8, 8), 0.5, 3


def drawn_cells(fig) -> dict[tuple[str, int], torch.Tensor]:
    """What the picture shows, read from its rectangles: per (variant, grid) a tensor 1 kept, 0 dropped, -1 none."""
    cells: dict[tuple[str, int], dict] = {}
    for patch in fig.axes[0].patches:
        gid = patch.get_gid() or ""
        if not gid.startswith("cell:"):
            continue
        _, variant, grid, r, c, state = gid.split(":")
        colour = to_hex(patch.get_facecolor())
        hatched = bool(patch.get_hatch())
        # the look must agree with the recorded state: filled and plain when kept, white and hatched when dropped
        looks = {"kept": (M.KEPT_COLOUR, False), "dropped": (M.DROPPED_COLOUR, True), "none": (M.UNMASKED_COLOUR, 0)}
        expected = looks[state]
        assert (colour, hatched) == expected, gid
        cells.setdefault((variant, int(grid)), {})[int(r), int(c)] = {"kept": 1, "dropped": 0, "none": -1}[state]
    out = {}
    for key, d in cells.items():
        rows, cols = max(r for r, _ in d) + 1, max(c for _, c in d) + 1
        t = torch.full((rows, cols), 9)
        for (r, c), v in d.items():
            t[r, c] = v
        assert (t != 9).all(), key
        out[key] = t
    return out


def gen(variant: str) -> torch.Generator:
    return torch.Generator().manual_seed(SEED + M.VARIANTS.index(variant))


def test_layer_pictures_show_the_masks_the_layers_sample():
    fig = M.draw(M.sample(SHAPE, P, SEED, M.LAYER_VARIANTS), P, SEED, SHAPE)
    cells = drawn_cells(fig)
    B, T, C = SHAPE
    x = torch.zeros(B, T, C)
    ids = panels_mod.sentence_ids(B, T)
    expected = {
        "dropout": Dropout(P).sample_mask(x, generator=gen("dropout")),
        "spatial": SpatialDropout1D(P).sample_mask(x, generator=gen("spatial")).expand(B, T, C),
        "token": TokenDropout(P).sample_mask(x, generator=gen("token")).expand(B, T, C),
        "word": WordDropout(P, unk_id=1, padding_idx=0)
        .sample_mask(ids, generator=gen("word"))
        .float()
        .unsqueeze(-1)
        .expand(B, T, C),
    }
    for mode in ("sample", "batch"):
        emb = Embedding(len(panels_mod.WORDS), C, padding_idx=0, dropout=P, dropout_mode=mode)
        expected[f"embedding-{mode}"] = (
            emb.sample_mask(ids, generator=gen(f"embedding-{mode}")).unsqueeze(-1).expand(B, T, C)
        )
    for variant, keep in expected.items():
        for b in range(B):
            assert torch.equal(cells[variant, b], keep[b].long()), variant  # as x[b] prints: time down, channels across
    linear = DropConnect(nn.Linear(C, C // 2), P)
    assert torch.equal(cells["dropconnect", 0], linear.sample_masks(generator=gen("dropconnect"))["weight"].long())
    # and the pictures show what the names promise, for any seed
    spatial = cells["spatial", 0]
    assert (spatial == spatial[:1]).all()  # a channel (column) is all kept or all dropped down the time steps
    token = cells["token", 1]
    assert (token == token[:, :1]).all()  # a time step (row) is all kept or all dropped across channels
    for mode in ("sample", "batch"):
        for b in range(B):
            for w in ids[b].unique():
                rows = cells[f"embedding-{mode}", b][ids[b] == w, 0]
                assert rows.unique().numel() == 1  # a word's rows are dropped at every occurrence or at none
    assert 0 < int(cells["dropout", 0].sum()) < C * T  # this seed drops some entries and keeps some


def test_recurrent_picture_shows_the_lstm_masks_step_by_step():
    B, T, C = SHAPE
    H = C // 2
    fig = M.draw(M.sample(SHAPE, P, SEED, M.RECURRENT_VARIANTS), P, SEED, SHAPE)
    cells = drawn_cells(fig)
    x, h = torch.zeros(B, T, C), torch.zeros(B, T, H)

    g = gen("naive")
    m = LSTM(C, H, dropout=P, variational=False).sample_masks(x, generator=g)
    out = Dropout(P).sample_mask(h, generator=g)
    for t in range(T):  # grids per step: input, recurrent, output, each a row of units
        assert torch.equal(cells["naive", 3 * t][0], m.input[0][0][0, t].long())
        assert (cells["naive", 3 * t + 1] == -1).all()  # naive dropout puts no mask on h(t-1)
        assert torch.equal(cells["naive", 3 * t + 2][0], out[0, t].long())
    assert not all(torch.equal(cells["naive", 0], cells["naive", 3 * t]) for t in range(T))  # new mask per step

    g = gen("variational")
    m = LSTM(C, H, dropout=P, recurrent_dropout=P).sample_masks(x, generator=g)
    out = SpatialDropout1D(P).sample_mask(h, generator=g)
    for t in range(T):
        assert torch.equal(cells["variational", 3 * t], m.input[0][0][:, 0].long())  # (4 gates, C)
        assert torch.equal(cells["variational", 3 * t + 1], m.recurrent[0][0][:, 0].long())  # (4 gates, H)
        assert torch.equal(cells["variational", 3 * t + 2][0], out[0, 0].long())

    g = gen("weight-drop")
    m = LSTM(C, H, weight_dropout=P).sample_masks(x, generator=g)
    locked_in = SpatialDropout1D(P).sample_mask(x, generator=g)
    locked_out = SpatialDropout1D(P).sample_mask(h, generator=g)
    for t in range(T):
        assert torch.equal(cells["weight-drop", 3 * t][0], locked_in[0, 0].long())
        assert torch.equal(cells["weight-drop", 3 * t + 1], m.weight[0][0].T.long())  # W_hh^T (H, 4H)
        assert torch.equal(cells["weight-drop", 3 * t + 2][0], locked_out[0, 0].long())


def test_captions_are_the_layers_mask_lines():
    panels = {p.variant: p for p in M.sample(SHAPE, P, SEED)}
    assert panels["spatial"].caption == "Mask: (B, 1, C), shared across T, redrawn every call."
    assert panels["token"].caption.startswith("Mask: (B, T, 1), shared across C")
    assert panels["embedding-sample"].caption == panels_mod.mask_line(Embedding)
    assert "1/(1-p) = 2" in panels["dropout"].scale and "nothing is rescaled" in panels["word"].scale
    assert all(p.scale.startswith(f"p = {P}:") for p in panels.values())  # every panel says its p
    assert not any("``" in p.caption for p in panels.values())  # no reST markup in a picture


def test_cli_writes_png_and_svg_with_the_cells_as_element_ids(tmp_path):
    args = ["--seed", "1", "--shape", "2,6,8", "--variant", "spatial", "--variant", "naive"]
    assert main(["masks", "--out", str(tmp_path), *args]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["masks-layers.png", "masks-layers.svg", "masks-recurrent.png", "masks-recurrent.svg"]
    assert (tmp_path / "masks-layers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (tmp_path / "masks-layers.svg").read_text()
    ids = re.findall(r'id="cell:spatial:(\d+):(\d+):(\d+):(\w+)"', svg)
    assert len(ids) == 2 * 6 * 8  # B grids of T x C cells
    panel = M.sample((2, 6, 8), 0.5, 1, ("spatial",))[0]
    for grid, r, c, state in ids:
        assert state == ("kept" if panel.grids[int(grid)].keep[int(r), int(c)] else "dropped")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--p", "1.5"], "Invalid value for argument '--p': expected a float in [0, 1). Received: --p=1.5"),
        (["--shape", "2,x,8"], "argument '--shape': expected three positive ints B,T,C"),
        (["--shape", "2,6"], "Received: --shape='2,6'"),
        (["--shape", "2,0,8"], "Received: --shape='2,0,8'"),
        (["--shape", "200,6,8"], "with B <= 8"),
        (["--variant", "gaussian"], "argument '--variant': expected one of 'dropout'"),
        (["--seed", "-1"], "argument '--seed': expected an int >= 0"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "pictures"
    assert main(["masks", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_cli_refuses_an_out_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("keep me")
    assert main(["masks", "--out", str(f)]) == 2
    assert "argument '--out': expected a directory" in capsys.readouterr().err
    assert f.read_text() == "keep me"


def test_p_zero_keeps_everything():
    for panel in M.sample((1, 3, 4), 0.0, 0):
        for grid in panel.grids:
            assert grid.keep is None or bool(grid.keep.all())


def test_the_default_picture_teaches():
    """At the default shape, p and seed, every grid keeps some cells and drops some, no sample loses all or nearly
    all its words, and embedding dropout visibly drops a repeated word at every occurrence."""
    panels = {p.variant: p for p in M.sample()}
    ids = panels_mod.sentence_ids(*M.DEFAULT_SHAPE[:2])
    for v in M.LAYER_VARIANTS:
        for grid in panels[v].grids:
            kept = grid.keep.float()
            assert 0 < kept.mean() < 1, (v, grid.label)
            if v in ("word", "token", "embedding-sample", "embedding-batch"):
                assert 0.25 <= kept[:, 0].mean() <= 0.75, (v, grid.label)  # share of words (rows) kept
            if v == "spatial":
                assert 0.25 <= kept[0].mean() <= 0.75, grid.label  # share of channels (columns) kept
    for v in ("embedding-sample", "embedding-batch"):
        repeated_dropped = [
            int(w)
            for b, grid in enumerate(panels[v].grids)
            for w in ids[b].unique()
            if (ids[b] == w).sum() > 1 and not grid.keep[ids[b] == w, 0].any()
        ]
        assert repeated_dropped, v
    naive = panels["naive"].grids
    assert len({tuple(g.keep[0].tolist()) for g in naive[0::3]}) > 1  # naive: a new input mask at each step


def test_the_legend_names_grey_only_where_a_grid_has_no_mask():
    layers = M.draw(M.sample(variants=M.LAYER_VARIANTS), P, SEED, SHAPE)
    recurrent = M.draw(M.sample(variants=("variational",)), P, SEED, SHAPE)
    naive = M.draw(M.sample(variants=("naive",)), P, SEED, SHAPE)
    texts = lambda fig: " ".join(t.get_text() for t in fig.axes[0].texts)  # noqa: E731
    assert "grey" not in texts(layers) and "grey" not in texts(recurrent)
    assert "grey: no mask" in texts(naive)  # naive dropout puts no mask on h(t-1): those cells are grey


def _svg_content(path):
    """The cells (id and state) and the texts of an SVG that ``embdrop masks`` wrote, in drawing order."""
    svg = path.read_text()
    return re.findall(r'id="(cell:[^"]+)"', svg), re.findall(r"<text[^>]*>([^<]*)</text>", svg)


@pytest.mark.parametrize("name", ["masks-layers", pytest.param("masks-recurrent", marks=pytest.mark.slow)])  # 3 s each
def test_the_committed_pictures_are_what_the_code_draws(tmp_path, name):
    """docs/img holds what ``embdrop masks --out docs/img`` draws today: the SVG cell by cell and text by text,
    the PNG by the colour at each cell's centre. Redraw them with that command when a layer's masks change."""
    docs = Path(__file__).parents[2] / "docs" / "img"
    assert main(["masks", "--out", str(tmp_path)]) == 0
    cells, texts = _svg_content(tmp_path / f"{name}.svg")
    committed_cells, committed_texts = _svg_content(docs / f"{name}.svg")
    assert len(cells) > 100 and texts
    assert committed_cells == cells, f"docs/img/{name}.svg differs: run `embdrop masks --out docs/img`"
    assert committed_texts == texts, f"docs/img/{name}.svg differs: run `embdrop masks --out docs/img`"

    from matplotlib.image import imread

    group = M.LAYER_VARIANTS if name == "masks-layers" else M.RECURRENT_VARIANTS
    fig = M.draw(M.sample(variants=group), M.DEFAULT_P, M.DEFAULT_SEED, M.DEFAULT_SHAPE)
    png = imread(docs / f"{name}.png")[..., :3]  # (rows, cols, RGB) in [0, 1]
    height, width = png.shape[:2]
    assert (width, height) == tuple(round(v * 110) for v in fig.get_size_inches())
    ax, scale = fig.axes[0], 110 / fig.dpi
    seen = 0
    for patch in ax.patches:
        gid = patch.get_gid() or ""
        if not gid.startswith("cell:"):
            continue
        x, y = patch.get_xy()
        (x0, y0), (x1, y1) = ax.transData.transform([(x + 0.2, y + 0.2), (x + 0.8, y + 0.8)]) * scale
        inner = png[round(height - y1) : round(height - y0), round(x0) : round(x1)]  # the middle of the cell
        r, g, b = (float(inner[..., k].mean()) for k in range(3))
        state = gid.rsplit(":", 1)[1]
        looks = "kept" if b - r > 0.3 else "none" if float(inner.std()) < 0.02 else "dropped"
        assert looks == state, (name, gid, (r, g, b))
        seen += 1
    assert seen == len(cells)
