import csv
import os
import signal
import subprocess
import sys

import pytest

from embdrop.recipes.compare import compare, summary_table


def test_best_is_marked_only_where_intervals_separate():
    rows = [{"cell": c, "seed": s, "accuracy": v} for c, vals in (("a", [0.90, 0.91, 0.92]), ("b", [0.80, 0.81, 0.82]))
            for s, v in enumerate(vals)]  # fmt: skip
    assert "0.9100 ± 0.0100 [0.8852, 0.9348] *" in summary_table(rows, "accuracy", True)
    close = [dict(r, accuracy=r["accuracy"] + (0.09 if r["cell"] == "b" else 0)) for r in rows]
    table = summary_table(close, "accuracy", True)
    assert "*" not in table.split("\n\n")[0] and "none does here" in table
    assert "[0.7852, 0.8348] *" in summary_table(rows, "accuracy", False)  # lower is better: b wins


@pytest.mark.slow
def test_compare_writes_the_raw_runs_the_table_and_the_plot(tmp_path):
    out = compare("movielens-mf", ["model.factors=4,8"], seeds=2, overrides=["train.epochs=1"], out=tmp_path / "c",
                  jobs=2, log=lambda *a: None)  # fmt: skip
    with open(out / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["cell"], r["seed"]) for r in rows] == [("model.factors=4", "0"), ("model.factors=4", "1"),
                                                      ("model.factors=8", "0"), ("model.factors=8", "1")]  # fmt: skip
    assert (out / "factors-8" / "seed-1" / "best.safetensors").exists()
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    table = (out / "table.md").read_text()
    assert table.count("| model.factors=") == 2 and "over 2 seeds" in table


def test_bad_vary_fails_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="--set"):
        compare("movielens-mf", ["model.nothing=1,2"], out=tmp_path / "c", log=lambda *a: None)
    with pytest.raises(ValueError, match="--vary"):
        compare("movielens-mf", ["model.factors"], out=tmp_path / "c", log=lambda *a: None)
    assert not (tmp_path / "c").exists()


def test_a_diverged_run_is_a_row_of_its_cell_and_the_table_says_so():
    rows = [{"cell": "a", "seed": s, "status": "finished", "rmse": 0.9 + s / 100} for s in range(3)]
    rows += [{"cell": "b", "seed": 0, "status": "finished", "rmse": 0.8}]
    rows += [{"cell": "b", "seed": s, "status": "diverged", "rmse": float("nan")} for s in (1, 2)]
    rows += [{"cell": "c", "seed": s, "status": "diverged", "rmse": float("nan")} for s in range(3)]
    table = summary_table(rows, "rmse", False)
    lines = table.splitlines()
    assert lines[0] == "| cell | runs | rmse |"
    assert lines[2].startswith("| a | 3 of 3 | 0.9100 ± 0.0100")
    assert lines[3] == "| b | 1 of 3 (2 diverged) | 0.8000 (1 seed: no spread) |"
    assert lines[4] == "| c | 0 of 3 (3 diverged) | diverged |"
    assert "5 diverged and are left out" in table and "*" not in table.split("\n\n")[0]


def test_resume_refuses_what_is_not_a_compare_directory(tmp_path):
    (tmp_path / "compare.json").write_text(
        '{"format": "embdrop-compare-1", "recipe": "movielens-mf", "seeds": 1, '
        '"runs": [{"cell": "", "seed": 0, "overrides": [], "folder": "../x"}]}'
    )
    with pytest.raises(ValueError, match="argument '--resume': expected a compare directory .*not one that compare"):
        compare(None, resume=tmp_path, log=lambda *a: None)
    with pytest.raises(ValueError, match="argument '--resume': expected a compare directory"):
        compare(None, resume=tmp_path / "missing", log=lambda *a: None)


def test_one_seed_has_no_interval_and_few_seeds_keep_to_the_metrics_range():
    one = [{"cell": c, "seed": 0, "accuracy": a, "rmse": r} for c, a, r in (("a", 0.9, 3.0), ("b", 0.8, 4.0))]
    table = summary_table(one, "accuracy", True)
    assert "| a | 1 of 1 | 0.9000 (1 seed: no spread) | 3.0000 (1 seed: no spread) |" in table
    assert "nan" not in table and "over 1 seed;" in table
    two = [{"cell": "a", "seed": s, "accuracy": a, "rmse": r} for s, a, r in ((0, 0.98, 1.0), (1, 0.6, 90.0))]
    table = summary_table(two, "accuracy", True)
    row = table.splitlines()[2]
    assert "[0.0000†, 1.0000†]" in row and "[0.0000†, " in row.split("|")[4]  # accuracy in [0, 1], RMSE >= 0
    assert "† an end beyond the range of accuracy, rmse is cut at it" in table


def test_progress_shows_each_live_runs_latest_epoch_from_its_log(tmp_path):
    from embdrop.recipes.compare import _last_epoch_line

    log = tmp_path / "seed-0.log"
    assert _last_epoch_line(log) is None  # not started yet
    log.write_text("data: reading reviews ...\nmodel: 12 parameters; training starts\n")
    assert _last_epoch_line(log) is None
    log.write_text(log.read_text() + "x" * 10_000 + "\nepoch 1/3: train loss 0.6\nepoch 2/3: train loss 0.5 *\n")
    assert _last_epoch_line(log) == "epoch 2/3: train loss 0.5 *"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_while_a_worker_starts_still_stops_that_worker(tmp_path, monkeypatch, sig):
    """The signal lands inside Popen, after the child exists: the child must still be killed and reaped."""
    from embdrop.recipes import compare as c

    started, real = [], subprocess.Popen

    def popen(cmd, **kw):  # a sleeping child in place of a worker, then the signal, before Popen returns
        started.append(real([sys.executable, "-c", "import time; time.sleep(60)"], **kw))
        os.kill(os.getpid(), sig)
        return started[-1]

    monkeypatch.setattr(subprocess, "Popen", popen)
    runs = [c.PlannedRun("", s, [], tmp_path / f"seed-{s}") for s in range(3)]
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        c._run_all("movielens-mf", runs, [0, 1, 2], {}, 2, 1, lambda line: None)
    assert len(started) == 2 and all(p.returncode is not None for p in started)  # killed and waited for
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
