import re

import pytest
import torch
from matplotlib.colors import to_hex
from torch import nn

from embdrop import LSTM, DropConnect, Dropout, Embedding, SpatialDropout1D, TokenDropout, WordDropout
from embdrop.cli import main
from embdrop.viz import masks as M

SHAPE, P, SEED = (2, 6, 8), 0.5, 3


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
    ids = M.sentence_ids(B, T)
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
        emb = Embedding(len(M.WORDS), C, padding_idx=0, dropout=P, dropout_mode=mode)
        expected[f"embedding-{mode}"] = (
            emb.sample_mask(ids, generator=gen(f"embedding-{mode}")).unsqueeze(-1).expand(B, T, C)
        )
    for variant, keep in expected.items():
        for b in range(B):
            assert torch.equal(cells[variant, b], keep[b].T.long()), variant  # channels down, time across
    linear = DropConnect(nn.Linear(C, C // 2), P)
    assert torch.equal(cells["dropconnect", 0], linear.sample_masks(generator=gen("dropconnect"))["weight"].long())
    # and the pictures show what the names promise, for any seed
    spatial = cells["spatial", 0]
    assert (spatial == spatial[:, :1]).all()  # a channel (row) is all kept or all dropped across time
    token = cells["token", 1]
    assert (token == token[:1]).all()  # a time step (column) is all kept or all dropped across channels
    for mode in ("sample", "batch"):
        for b in range(B):
            for w in ids[b].unique():
                cols = cells[f"embedding-{mode}", b][0, ids[b] == w]
                assert cols.unique().numel() == 1  # a word is dropped at every occurrence or at none
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
    for t in range(T):  # grids per step: input, recurrent, output
        assert torch.equal(cells["naive", 3 * t][:, 0], m.input[0][0][0, t].long())
        assert (cells["naive", 3 * t + 1] == -1).all()  # naive dropout puts no mask on h(t-1)
        assert torch.equal(cells["naive", 3 * t + 2][:, 0], out[0, t].long())
    assert not all(torch.equal(cells["naive", 0], cells["naive", 3 * t]) for t in range(T))  # new mask per step

    g = gen("variational")
    m = LSTM(C, H, dropout=P, recurrent_dropout=P).sample_masks(x, generator=g)
    out = SpatialDropout1D(P).sample_mask(h, generator=g)
    for t in range(T):
        assert torch.equal(cells["variational", 3 * t], m.input[0][0][:, 0].T.long())  # (C, 4 gates)
        assert torch.equal(cells["variational", 3 * t + 1], m.recurrent[0][0][:, 0].T.long())  # (H, 4 gates)
        assert torch.equal(cells["variational", 3 * t + 2][:, 0], out[0, 0].long())

    g = gen("weight-drop")
    m = LSTM(C, H, weight_dropout=P).sample_masks(x, generator=g)
    locked_in = SpatialDropout1D(P).sample_mask(x, generator=g)
    locked_out = SpatialDropout1D(P).sample_mask(h, generator=g)
    for t in range(T):
        assert torch.equal(cells["weight-drop", 3 * t][:, 0], locked_in[0, 0].long())
        assert torch.equal(cells["weight-drop", 3 * t + 1], m.weight[0][0].long())  # (4H, H)
        assert torch.equal(cells["weight-drop", 3 * t + 2][:, 0], locked_out[0, 0].long())


def test_captions_are_the_layers_mask_lines():
    panels = {p.variant: p for p in M.sample(SHAPE, P, SEED)}
    assert panels["spatial"].caption == "Mask: (B, 1, C), shared across T, redrawn every call."
    assert panels["token"].caption.startswith("Mask: (B, T, 1), shared across C")
    assert panels["embedding-sample"].caption == M.mask_line(Embedding)
    assert "1/(1-p) = 2" in panels["dropout"].scale and "nothing is rescaled" in panels["word"].scale


def test_cli_writes_png_and_svg_with_the_cells_as_element_ids(tmp_path):
    assert main(["masks", "--out", str(tmp_path), "--seed", "1", "--variant", "spatial", "--variant", "naive"]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["masks-layers.png", "masks-layers.svg", "masks-recurrent.png", "masks-recurrent.svg"]
    assert (tmp_path / "masks-layers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (tmp_path / "masks-layers.svg").read_text()
    ids = re.findall(r'id="cell:spatial:(\d+):(\d+):(\d+):(\w+)"', svg)
    assert len(ids) == 2 * 8 * 6  # B grids of C x T cells
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
