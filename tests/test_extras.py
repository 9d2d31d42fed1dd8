import importlib.util
import subprocess
import sys

from embdrop import _extras
from embdrop.cli import main


def test_importing_embdrop_and_its_layers_needs_no_extra():
    """The core install is torch and numpy: importing the package and running a layer loads no optional package."""
    code = (
        "import sys, torch, embdrop; m = embdrop.LSTM(3, 4, dropout=0.5, recurrent_dropout=0.5);"
        "m(torch.randn(2, 5, 3))[0].sum().backward(); import embdrop.recipes, embdrop.data;"
        f"print(sorted(set(sys.modules) & {set(_extras.EXTRAS)!r}))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def test_a_missing_extra_is_named_in_one_line(monkeypatch, capsys, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "rich" else real(name, *a))
    assert main(["train", "--out", str(tmp_path / "run"), "--set", "train.epochs=1"]) == 2
    err = capsys.readouterr().err
    assert err == ("embdrop train: error: this needs the package 'rich', from the extra 'train': "
                   "pip install 'embdrop[train]'\n")  # fmt: skip
    assert not (tmp_path / "run").exists()
