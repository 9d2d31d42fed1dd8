"""``train.threads``: a number, or the cores other processes leave idle when the run starts."""

import os
import subprocess
import sys
import time

import pytest
import torch

from embdrop.recipes import resolve
from embdrop.recipes.train_setup import check_train, idle_cores, resolve_threads


def test_an_explicit_count_is_set_and_a_wrong_one_refused():
    before = torch.get_num_threads()
    try:
        assert resolve_threads(1, log=None) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match=r"'train.threads': expected an int in \[1, \d+\). Received: train.threads=0"):
        check_train(resolve("reviews-lstm", ["train.threads=0"]).train)


def test_idle_cores_is_between_one_and_all():
    assert 1 <= idle_cores(0.05) <= (os.cpu_count() or 1)


@pytest.mark.slow
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 cores")
def test_a_busy_process_leaves_fewer_threads_to_the_run():
    lines = []
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # the busy loop is running
        threads = resolve_threads(None, log=lines.append)
    finally:
        busy.kill()
        torch.set_num_threads(os.cpu_count() or 1)
    assert threads < (os.cpu_count() or 1)
    assert "cores busy with other work" in lines[0]
