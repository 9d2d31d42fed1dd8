"""One run of a compare grid in its own process: ``python -m embdrop.recipes.worker PARENT_PID RESULT -- ARGS``.

The worker dies with its parent, however the parent dies (``kill -9`` included): on Linux the kernel sends it
SIGKILL when the parent exits (``PR_SET_PDEATHSIG``), and elsewhere a thread that watches the parent's pid ends it
within a second. A killed run is safe to kill: its directory resumes from its last commit.

It trains with :func:`embdrop.recipes.train` (``--out DIR`` or ``--resume DIR`` and ``--set`` items, as the
command line takes them) and writes what became of the run to RESULT as JSON: ``{"status": "finished"}``,
``{"status": "diverged", "message": ...}`` (exit 1) or ``{"status": "usage", "argument", "expected",
"received"}`` for a field the recipe refuses (exit 2). Anything else is a bug: its traceback goes to the log.
"""

from __future__ import annotations

import ctypes
import io
import os
import signal
import sys
import threading
import time


def die_with_parent(parent: int) -> None:
    """End this process when ``parent`` is no longer its parent."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(137)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(137)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def run(argv: list[str]) -> int:
    parent, result, sep, *args = argv
    die_with_parent(int(parent))  # before the imports below (torch: a second or more), so an orphan ends at once
    from embdrop import _checks, recipes
    from embdrop._io import write_json
    from embdrop.recipes.train_setup import TrainingDiverged

    recipe, overrides, out, resume = None, [], None, None
    it = iter(args)
    for a in it:
        if a == "--set":
            overrides.append(next(it))
        elif a == "--out":
            out = next(it)
        elif a == "--resume":
            resume = next(it)
        else:
            recipe = a
    from rich.console import Console

    try:
        recipes.train(recipe if resume is None else None, overrides, out, resume=resume,
                      console=Console(file=sys.stderr, width=120))  # fmt: skip
    except _checks.UsageError as e:
        write_json(result, {"status": "usage", "argument": e.argument, "expected": e.expected,
                            "received": e.received})  # fmt: skip
        return 2
    except TrainingDiverged as e:
        write_json(result, {"status": "diverged", "message": str(e)})
        return 1
    write_json(result, {"status": "finished"})
    return 0


if __name__ == "__main__":
    sys.stdout = io.TextIOWrapper(sys.stdout.buffer, line_buffering=True) if sys.stdout else sys.stdout
    sys.exit(run(sys.argv[1:]))
