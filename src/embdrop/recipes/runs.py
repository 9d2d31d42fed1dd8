"""A run directory: :func:`train` checks what a user gives, creates or resumes the directory, locks it, and hands
the task and the model to :func:`embdrop.recipes.loop.fit`."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import torch

from embdrop import _checks, _extras
from embdrop._io import leaves
from embdrop.recipes import checkpoint, distributed, inputs, memory
from embdrop.recipes.config import Config, to_dict
from embdrop.recipes.loop import fit
from embdrop.recipes.losses import keep_freed_memory
from embdrop.recipes.registry import DEFAULT, load_config, recipe, resolve
from embdrop.recipes.train_setup import Summary, check_train

# Fields that a resume may change: when to stop and how to report. Any other field changes what the run means
# (its data, its model or its optimisation), so a resume that sets one is refused.
RESUMABLE = (
    "train.epochs",
    "train.patience",
    "train.mc",
    "train.log_every",
    "train.device",
    "train.threads",
    "data.mc_masks",
)


def _check_vectors(config) -> None:
    """A pretrained-vectors file that does not exist is said before the data are read (it is read after them)."""
    from embdrop.data.vectors import PACKAGED
    from embdrop.recipes.text_classification import PRETRAINED

    source = getattr(getattr(config, "embedding", None), "pretrained", None)
    named = set(PACKAGED) | set(PRETRAINED)
    if source is not None and source not in named and not Path(source).expanduser().is_file():
        raise _checks.invalid("embedding.pretrained", "a vectors file (GloVe, word2vec, fastText; optionally .gz) or "
                              f"one of {sorted(named)}", f"{source!r} (no such file)")  # fmt: skip


LARGE = 8 << 20  # bytes: a file this large takes a noticeable time to read and encode


def _large_input(config) -> str | None:
    """The data folder (``data.root``, a folder ``--data``) or the ``--data`` file of more than ``LARGE`` bytes this
    run reads, or None (the packaged datasets and small files load at once, and a path that does not exist or an
    empty folder is an error said on its own line)."""
    for name in ("train", "root"):
        value = getattr(config.data, name, None)
        if isinstance(value, str) and value:
            p = Path(value).expanduser()
            if (p.is_dir() and any(p.iterdir())) or (p.is_file() and p.stat().st_size > LARGE):
                return value
    return None


def _stderr(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


def train(
    name: str | None = None,
    overrides: list[str] = (),
    out: str | Path | None = None,
    *,
    resume: str | Path | None = None,
    console=None,
    allow_changed_data: bool = False,
) -> Summary:
    """Train a recipe into a new run directory (``out``, default ``runs/<recipe>-<time>``), or continue ``resume``.

    Everything a user gives is checked before the data are read; the run directory is locked while training (a
    second process writing it gets an error). With ``resume``, ``overrides`` may set only the fields of
    :data:`RESUMABLE`; the changes are written to ``config.json`` and recorded in the checkpoint's ``resumes``. A
    resume whose input files changed since the run began (see :mod:`embdrop.recipes.inputs`) is refused unless
    ``allow_changed_data``, which the record of resumes then keeps.
    Started by ``torchrun --nproc_per_node N`` it trains on N processes (DDP over gloo); see :func:`loop.fit`.
    """
    _extras.need("rich", "safetensors", "matplotlib")  # before anything is read or written
    distributed.start()
    changes: list[dict] = []
    restart = False  # a run killed before its first commit: started again from scratch in its own directory
    if resume is not None:
        run = Path(resume)
        saved = load_config(run, "--resume")
        config = load_config(run, "--resume", overrides)
        if name is not None and name != config.recipe:
            raise _checks.invalid("recipe", f"{config.recipe!r} (the recipe of {run}) or none", repr(name))
        changed = _changes(saved, config)
        frozen = [k for k in changed if k not in RESUMABLE]
        if frozen:
            raise _checks.invalid(
                "--set",
                f"only {', '.join(RESUMABLE)} with --resume (the others change what the run means; start a new run "
                "with --out)",
                ", ".join(f"{k}={changed[k][1]}" for k in frozen),
            )
        if changed:
            changes.append({"changed": changed})
        restart = _uncommitted(run)
        if not restart:
            checkpoint.check_readable(run)
        prints = inputs.fingerprints(leaves(to_dict(config)))  # the files as this process reads them
        moved = inputs.changed(run, prints)
        if moved and not allow_changed_data:
            raise _checks.invalid("--resume", "the input files the run was trained on, unchanged (or "
                                  "--allow-changed-data to go on with them as they are now; the run's summary "
                                  "records it)", f"{str(run)!r}: {inputs.describe(moved)}")  # fmt: skip
        if moved:
            record = {"inputs_changed": {f: inputs.describe({f: v}) for f, v in moved.items()}}
            if changes:
                changes[0].update(record)
            else:
                changes.append(record)
    else:
        config = resolve(name or DEFAULT, overrides)
        run = Path(out) if out is not None else Path("runs") / f"{config.recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
        run = distributed.same_on_every_rank(run)
        if distributed.world_rank()[1] == 0:
            restart = _check_new_run_dir(run)
        prints = inputs.fingerprints(leaves(to_dict(config)))  # the files as this process reads them
    check_train(config.train, distributed.world_rank()[0])  # a wrong training field fails before the data are read
    keep_freed_memory()  # no page faults on every step's fresh activations (see recipes/losses.py)
    torch.manual_seed(config.train.seed)
    r = recipe(config.recipe)
    _check_vectors(config)
    lead = distributed.world_rank()[1] == 0
    say = (lambda line: console.print(line, soft_wrap=True)) if console is not None else _stderr
    source = _large_input(config)
    if lead and source is not None:  # a corpus folder or a large file takes a while: say what happens
        say(f"data: reading {source} for {config.recipe} ...")
    with _fields_named(config):
        task = r.task(config)  # reads the data: a wrong data.root fails here, before anything is written
        sizing = [o for o in overrides if o.partition("=")[0].strip().startswith(("model.", "data.max_tokens"))]
        memory.check_fits(lambda: r.build(config, task), sizing)
        try:
            model = r.build(config, task)
        except (RuntimeError, MemoryError) as e:
            if not (isinstance(e, MemoryError) or memory.allocation_failed(e)):
                raise
            field, _, value = sizing[0].partition("=") if sizing else ("model", "", "the recipe's model")
            raise _checks.invalid(field, "a model that can be allocated in this machine's memory", value) from None
    created, lock = False, None
    if distributed.world_rank()[1] == 0:
        argument = "--resume" if resume is not None else "--out"
        try:
            run.mkdir(parents=True)
            created = True
        except FileExistsError:
            pass
        except OSError as e:
            raise _checks.invalid(argument, "a directory that can be written", f"{str(run)!r} ({e.strerror})") from None
        lock = checkpoint.RunLock(run).acquire()
        if restart:  # under the lock: no other process is writing it
            if not _uncommitted(run):  # it changed meanwhile
                lock.release()
                raise _checks.invalid(argument, "a run directory that no other process has started meanwhile",
                                      repr(str(run)))  # fmt: skip
            for p in run.iterdir():
                if p.name != ".lock":
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
            note = f"{run} holds a run stopped before its first epoch ended: starting it again from scratch"
            console.print(note, soft_wrap=True) if console is not None else print(note, file=sys.stderr)
        elif resume is None and any(p.name != ".lock" for p in run.iterdir()):  # another run started here meanwhile
            lock.release()
            raise _checks.invalid("--out", "a new or empty directory (continue a run with --resume)", repr(str(run)))
    distributed.barrier()
    try:
        summary = fit(config, task, model, run, resume=resume is not None and not restart, console=console,
                      resumes=changes, inputs=prints)  # fmt: skip
        if lock is not None and any("inputs_changed" in c for c in changes):  # accepted: the files as they are now
            inputs.save(run, prints)
        return summary
    except BaseException as e:
        if lock is not None:
            lock.release(remove=True)
        removed = created and not checkpoint.committed(run)
        if removed:
            shutil.rmtree(run, ignore_errors=True)  # nothing worth keeping: leave no half-made run behind
        if isinstance(e, KeyboardInterrupt):
            raise TrainingInterrupted(run, kept=not removed, committed=checkpoint.committed(run)) from None
        if _disk_full(e):
            kept = "the last complete epoch is kept" if checkpoint.committed(run) else "no epoch had completed"
            raise StorageFull(f"no space left on the device writing {run} ({kept}): free some space, then continue "
                              f"with: embdrop train --resume {run}" if not removed else
                              f"no space left on the device writing {run} (nothing was kept): free some space "
                              "and run the same command again") from None  # fmt: skip
        raise
    finally:
        if lock is not None:
            lock.release()


class StorageFull(RuntimeError):
    """The disk filled up while a run wrote its directory: the last commit is intact (writes are atomic)."""


def _disk_full(e: BaseException) -> bool:
    import errno

    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "No space left on device" in str(e) or "Disk quota exceeded" in str(e)  # safetensors' own errors


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run. ``kept``: its directory is still there (``--resume`` continues it, from its
    last commit, or from scratch when ``committed`` is False); otherwise nothing was kept."""

    def __init__(self, run: Path, *, kept: bool, committed: bool) -> None:
        super().__init__(str(run))
        self.run, self.kept, self.committed = run, kept, committed

    def advice(self) -> str:
        if not self.kept:
            return "interrupted before its first epoch ended; nothing was kept (run the same command again)"
        if self.committed:
            return f"interrupted; the last complete epoch is saved (continue with: embdrop train --resume {self.run})"
        return (f"interrupted before its first epoch ended (start it again with: embdrop train --resume {self.run}, "
                "or the same command)")  # fmt: skip


# What a run writes before its first commit (and the lock): a directory holding only these is a run killed then.
EARLY_FILES = ("config.json", "vocab.json", "source_vocab.json", "classes.json", "categories.json", "inputs.json",
               ".lock")  # fmt: skip


def _uncommitted(run: Path) -> bool:
    """``run`` holds a run killed before its first commit: its config.json, nothing but the files a run writes
    before that commit (and temporary files), and no checkpoint."""
    try:
        names = [p.name for p in run.iterdir()]
    except OSError:
        return False
    return "config.json" in names and all(n in EARLY_FILES or n.endswith(".tmp") for n in names)


def _check_new_run_dir(run: Path) -> bool:
    """``--out`` must be a new or empty directory that this process can create or write, or one that holds a run
    killed before its first epoch ended (True: it is started again there)."""
    if run.is_dir() and _uncommitted(run):
        return True
    if run.exists() and (not run.is_dir() or any(run.iterdir())):
        raise _checks.invalid("--out", "a new or empty directory (continue a run with --resume)", repr(str(run)))
    base = run
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise _checks.invalid(
            "--out", "a directory path (a file is in the way)", f"{str(run)!r} ({str(base)!r} is a file)"
        )
    try:  # the one sure test of writability: make a directory there, and remove it
        import tempfile

        Path(tempfile.mkdtemp(prefix=".embdrop-check-", dir=base)).rmdir()
    except OSError as e:
        raise _checks.invalid(
            "--out", "a directory that can be written", f"{str(run)!r} ({e.strerror} in {str(base)!r})"
        ) from None
    return False


def _changes(old: Config, new: Config) -> dict[str, list]:
    """``{field: [old, new]}`` for every field that differs."""
    a, b = leaves(to_dict(old)), leaves(to_dict(new))
    return {k: [a.get(k), b[k]] for k in b if a.get(k) != b[k]}


# internal argument names whose field has another name
_ALIASES = {"max_size": "data.max_tokens"}


class _fields_named:
    """Re-raise a user error of a layer or a reader under the ``--set`` field it came from.

    The layers name their own arguments (``p``, ``max_size``); a user who typed ``--set model.dropout=1.5`` needs
    to read ``model.dropout``. The field is the one of that name, or else the only field holding that value; an
    error that matches no single field is left as it is.
    """

    def __init__(self, config: Config) -> None:
        self.values = leaves(to_dict(config))

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, tb) -> bool:
        if not isinstance(error, _checks.UsageError) or error.argument in self.values or error.argument.startswith("-"):
            return False
        name = _ALIASES.get(error.argument, error.argument)
        leaf = [k for k in self.values if k == name or k.rsplit(".", 1)[-1] == name]
        same = [k for k, v in self.values.items() if error.received in (repr(v), str(v))]
        found = leaf if len(leaf) == 1 else [k for k in same if k in leaf] or same
        if len(found) != 1:
            return False
        raise _checks.invalid(found[0], error.expected, error.received) from None
