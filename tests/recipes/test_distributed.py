"""`embdrop train` under torchrun: 2 processes (DDP over gloo) give what 1 process gives for the same global batch."""

import json
import os
import socket
import subprocess
import sys

import pytest

ITEMS = ["--set", "train.epochs=2", "--set", "train.batch_size=512", "--set", "model.factors=8"]


def free_port() -> int:
    """A port no process listens on now (the OS picks it), so two runs of the suite never collide."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(tmp_path, name, *launcher):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, *launcher, "-m", "embdrop.cli", "train", "movielens-mf", "--out", str(tmp_path / name)]
    r = subprocess.run(cmd + ITEMS, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return r, json.loads((tmp_path / name / "summary.json").read_text())


@pytest.mark.slow
def test_two_processes_match_one_within_noise(tmp_path):
    pytest.importorskip("torch.distributed")
    one, single = train(tmp_path, "one")
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]
    two, ddp = train(tmp_path, "two", *launcher)
    # the same global batch of 512 ratings, split 256 + 256: the same updates up to float sums and dropout draws
    assert abs(ddp["test"]["rmse"] - single["test"]["rmse"]) < 0.01
    assert two.stdout.count("test: loss") == 1  # only rank 0 prints the summary
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
