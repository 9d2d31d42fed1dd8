import subprocess
import sys

import pytest

from embdrop.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "embdrop.cli", *args], capture_output=True, text=True)


def test_show_default(capsys):
    assert main(["show"]) == 0
    out = capsys.readouterr().out
    assert "SpatialDropout1D" in out and "[ 1  2  3  4]" in out


def test_show_options(capsys):
    assert main(["show", "--variant", "spatial", "--p", "0.25", "--shape", "2,5,3", "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert "(2, 5, 3), p = 0.25, seed = 4" in out and "TokenDropout" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["show", "--p", "1.5"],
            "embdrop show: error: Invalid value for argument 'p': expected a float in [0, 1). Received: p=1.5",
        ),
        (["show", "--shape", "3,x,4"], "Invalid value for argument 'shape': expected three positive ints"),
        (["show", "--mode", "word"], "Invalid value for argument 'mode'"),
        (["show", "--variant", "rows"], "argument --variant: invalid choice: 'rows'"),
        (["show", "--p", "half"], "argument --p: invalid float value: 'half'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_user_mistakes_give_one_line_and_status_2(args, message):
    r = run(*args)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert message in r.stderr
