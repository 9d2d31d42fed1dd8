"""``embdrop compare`` as real processes: killed at any moment it leaves no worker behind and resumes to the
numbers of a grid never interrupted; Ctrl-C and SIGTERM stop it with one line; a diverging cell does not stop it."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real processes

GRID = ["compare", "movielens-mf", "--vary", "model.factors=4,8", "--seeds", "2", "--set", "train.epochs=2",
        "--jobs", "2"]  # fmt: skip
ENV = {**os.environ, "MKL_CBWR": "COMPATIBLE"}  # every process on MKL's one code path, for equal numbers


def embdrop(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "embdrop.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, **kw)  # fmt: skip


def workers_of(out) -> list[int]:
    """Pids of live processes whose command line names ``out`` (the workers write there)."""
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if str(out) in cmd and "embdrop.recipes.worker" in cmd and state != "Z":
                pids.append(int(pid))
    return pids


def table(out) -> list[dict]:
    with open(out / "runs.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "seconds_per_epoch"} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("grid") / "whole"
    p = embdrop(*GRID, "--out", str(out))
    assert p.wait(timeout=300) == 0, p.stderr.read()
    return table(out)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("after", [1.0, 4.0, 7.0])
def test_a_sigkill_leaves_no_worker_and_resume_gives_the_uninterrupted_table(tmp_path, uninterrupted, after):
    out = tmp_path / "killed"
    p = embdrop(*GRID, "--out", str(out))
    time.sleep(after)
    p.send_signal(signal.SIGKILL)
    p.wait()
    deadline = time.time() + 5
    while workers_of(out) and time.time() < deadline:
        time.sleep(0.1)
    assert workers_of(out) == []  # every worker died with its parent
    if not (out / "compare.json").exists():  # killed before the plan was written: the same command again
        p = embdrop(*GRID, "--out", str(out))
    else:
        p = embdrop("compare", "--resume", str(out))
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stderr
    assert table(out) == uninterrupted


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_the_workers_with_one_line_and_resume_finishes(tmp_path, uninterrupted, sig):
    out = tmp_path / "stopped"
    p = embdrop(*GRID, "--out", str(out))
    deadline = time.time() + 60
    while not workers_of(out) and time.time() < deadline:
        time.sleep(0.1)
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130
    assert stderr.strip().splitlines()[-1].startswith("embdrop compare: interrupted;")
    assert f"continue with: embdrop compare --resume {out}" in stderr and "Traceback" not in stderr
    assert workers_of(out) == []
    p = embdrop("compare", "--resume", str(out))
    assert p.wait(timeout=300) == 0
    assert table(out) == uninterrupted


def test_a_diverging_cell_is_recorded_and_the_grid_goes_on(tmp_path):
    out = tmp_path / "grid"
    p = embdrop("compare", "movielens-mf", "--vary", "train.lr=0.005,1e30", "--seeds", "2", "--set",
                "train.epochs=1", "--jobs", "2", "--out", str(out))  # fmt: skip
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stderr
    rows = list(csv.DictReader((out / "runs.csv").read_text().splitlines()))
    assert [(r["cell"], r["status"]) for r in rows] == [("train.lr=0.005", "finished")] * 2 + [
        ("train.lr=1e30", "diverged")] * 2  # fmt: skip
    assert "| train.lr=1e30 | 0 of 2 (2 diverged) | diverged |" in (out / "table.md").read_text()
    assert "diverged (" in stdout
