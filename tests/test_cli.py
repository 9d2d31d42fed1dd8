import subprocess
import sys

import pytest

from embdrop.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "embdrop.cli", *args], capture_output=True, text=True)


def run_here(capsys, *args) -> tuple[int, str]:
    """(exit status, stderr) of ``embdrop ARGS`` in this process: a traceback would fail the test as an exception."""
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as e:  # argparse's own errors
        code = e.code
    return code, capsys.readouterr().err


def test_a_user_mistake_in_a_real_process_is_one_line_and_no_traceback():
    for args, message in [(["frobnicate"], "invalid choice: 'frobnicate'"),
                          (["train", "--set", "train.lr=fast"], "expected train.lr to be float")]:  # fmt: skip
        r = run(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr


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
            "embdrop show: error: Invalid value for argument '--p': expected a float in [0, 1). Received: --p=1.5",
        ),
        (["show", "--shape", "3,x,4"], "Invalid value for argument '--shape': expected three positive ints"),
        (["show", "--mode", "word"], "Invalid value for argument '--mode'"),
        (["show", "--variant", "rows"], "argument --variant: invalid choice: 'rows'"),
        (["show", "--p", "half"], "argument --p: invalid float value: 'half'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_user_mistakes_give_one_line_and_status_2(args, message, capsys):
    code, err = run_here(capsys, *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert message in err


def test_recipes_lists_one_line_each(capsys):
    assert main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [
        "text-lstm", "text-cnn", "text-cnn-lstm", "tabular-entity", "reviews-cnn-lstm", "reviews-lstm", "imdb-cnn-lstm",
        "imdb-lstm",
        "ptb-lm", "wikitext2-lm", "flights-entity", "movielens-mf", "translate-fr-en"]  # fmt: skip


@pytest.mark.slow
def test_train_end_to_end_prints_the_summary(tmp_path):
    r = run("train", "--out", str(tmp_path / "run"), "--set", "train.epochs=1", "--set", "data.maxlen=30")
    assert r.returncode == 0, r.stderr
    assert "test: loss" in r.stdout and "time per epoch" in r.stdout and "parameters: " in r.stdout
    assert "epoch 1/1: train loss" in r.stderr
    assert (tmp_path / "run" / "best.safetensors").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "nope"], "embdrop train: error: Invalid value for argument 'recipe': expected one of"),
        (["train", "--set", "train.lr=fast"], "Invalid value for argument '--set': expected train.lr to be float"),
        (["train", "--set", "model.size=3"], "Invalid value for argument '--set': expected FIELD=VALUE with FIELD"),
        (["train", "--resume", "/nonexistent"], "Invalid value for argument '--resume'"),
        (["train", "ptb-lm"], "Invalid value for argument 'data.root'"),
        (["train", "ptb-lm", "--set", "variant=huge"], "Invalid value for argument 'variant': expected one of"),
        (["train", "--set", "embedding.pretrained=/no/such.txt"], "Invalid value for argument 'embedding.pretrained'"),
        (["compare", "movielens-mf", "--vary", "model.factors=a,b"], "expected model.factors to be int"),
        (["compare", "movielens-mf", "--cell", "x"], "Invalid value for argument '--cell'"),
        (["predict", "/nonexistent", "text"], "Invalid value for argument 'RUN_DIR'"),
    ],
)
def test_train_user_mistakes_are_one_line(args, message, tmp_path, capsys):
    out = ["--out", str(tmp_path / "never")] if args[0] != "predict" and "--resume" not in args else []
    code, err = run_here(capsys, *args, *out)
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "never").exists()


@pytest.mark.slow
def test_predict_and_compare_from_the_command_line(tmp_path):
    r = run("train", "reviews-lstm", "--out", str(tmp_path / "run"), "--set", "train.epochs=1", "--set",
            "data.maxlen=30", "--set", "model.hidden=8")  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = run("predict", str(tmp_path / "run"), "lovely tea", "awful", "--mc", "10")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("P(great) = ") and "MC std" in line for line in lines)
    r = run("compare", "movielens-mf", "--vary", "model.factors=4,8", "--seeds", "2", "--set", "train.epochs=1",
            "--out", str(tmp_path / "cmp"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "| model.factors=4 |" in r.stdout and (tmp_path / "cmp" / "table.md").exists()


def test_compare_help_prints_a_plain_percent_sign(capsys):
    with pytest.raises(SystemExit) as e:
        main(["compare", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert e.value.code == 0 and "95% interval" in out and "%%" not in out


def test_help_and_version_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, embdrop.cli\n"
            "try:\n    embdrop.cli.main(['--version'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "import embdrop\nassert 'torch' not in sys.modules\n"
            "assert embdrop.LSTM.__name__ == 'LSTM' and 'torch' in sys.modules\n")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip().startswith("embdrop "), r.stderr


@pytest.mark.parametrize("args", [["recipes"], ["config", "ptb-lm", "--set", "variant=awd", "--set", "model.hidden=8"],
                                  ["config", "text-lstm", "--set", "model.bogus=1"]])  # fmt: skip
def test_recipes_and_config_answer_without_importing_torch(args):
    """They read only the presets (recipes/presets.py): no torch, so they answer at once."""
    import subprocess
    import sys

    code = (f"import sys, embdrop.cli\ncode = embdrop.cli.main({args!r})\n"
            "assert 'torch' not in sys.modules, 'torch imported'\nsys.exit(code)\n")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == (2 if "model.bogus=1" in args else 0), r.stderr
    assert ("did you mean model.zoneout" in r.stderr) if "model.bogus=1" in args else r.stdout


def test_a_closed_pipe_is_not_a_traceback():
    """``embdrop config text-lstm | head -3``: the reader goes away early; the command ends quietly."""
    import subprocess
    import sys

    r = subprocess.run(f"{sys.executable} -m embdrop.cli config text-lstm | head -1", shell=True, capture_output=True,
                       text=True)  # fmt: skip
    assert r.stdout.startswith("text-lstm: every field") and "Traceback" not in r.stderr, r.stderr
