"""Checkpoint I/O and the run-directory lock: one atomic commit per epoch, one writer per run directory.

The commit is ``checkpoint.safetensors``: the model, the optimizer state, the RNG states, the best epoch's weights
and, in the file's metadata, the epoch counter, the best epoch, the metrics of every epoch so far and the record
of resumes. It is written to a temporary name, flushed to disk and renamed, so after a crash at any instant the
run directory holds either the previous epoch's commit or this one's, never a mix. ``metrics.jsonl``,
``best.safetensors``, ``checkpoint.json`` and ``curve.png`` are derived from the commit (written after it, and
rewritten from it on resume), so a death between two of those writes loses nothing.

Run directories written before this format (a ``checkpoint.safetensors`` without that metadata, its state in
``checkpoint.json``) still resume: their state is read from ``checkpoint.json``, ``metrics.jsonl`` and
``best.safetensors``.

Nothing is ever unpickled: tensors are safetensors, everything else JSON.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from embdrop import _checks, _extras
from embdrop._io import atomic_write, write_json

FORMAT = "embdrop-checkpoint-2"


def weights_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as safetensors takes it: contiguous CPU tensors, and tied weights (one tensor under two
    names, as a tied embedding and softmax) written as copies, which ``load_state_dict`` puts back into the one
    shared tensor. The tensors may share memory with the model: clone them to keep a snapshot."""
    seen: set[int] = set()
    out = {}
    for k, v in model.state_dict().items():
        v = v.detach().contiguous()
        out[k] = (v.clone() if v.data_ptr() in seen else v).cpu()  # a GPU run writes CPU tensors
        seen.add(v.data_ptr())
    return out


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's weights that later training steps do not change."""
    return {k: v.clone() for k, v in weights_of(model).items()}


@dataclass
class State:
    """What one commit holds besides the tensors of the model and the optimizer."""

    epoch: int = 0
    best: dict = field(default_factory=lambda: {"epoch": 0, "value": None})
    history: list[dict] = field(default_factory=list)  # one metrics row per epoch, as metrics.jsonl
    resumes: list[dict] = field(default_factory=list)  # {"after_epoch": k, "changed": {field: [old, new]}}
    best_weights: dict[str, torch.Tensor] | None = None
    first_loss: float | None = None  # the run's first training loss: the scale of an exploding loss


def save(run: Path, model: nn.Module, opt: torch.optim.Optimizer, state: State) -> None:
    """Commit the epoch ``state.epoch`` (one atomic rename), then write the files derived from it."""
    _extras.need("safetensors")
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v for k, v in weights_of(model).items()}
    tensors.update({f"best.{k}": v for k, v in (state.best_weights or {}).items()})
    osd = opt.state_dict()
    for idx, st in osd["state"].items():
        for name, value in st.items():
            tensors[f"optim.{idx}.{name}"] = torch.as_tensor(value).contiguous().cpu()
    tensors["rng.torch"] = torch.get_rng_state()
    device = next(model.parameters()).device
    if device.type == "cuda":  # the dropout masks of a GPU run come from its CUDA generator
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    meta = {
        "epoch": state.epoch,
        "best": state.best,
        "history": state.history,
        "resumes": state.resumes,
        "first_loss": state.first_loss,
        "param_groups": osd["param_groups"],
    }
    # safetensors refuses two names for one storage: any tensor that shares memory with another is written as a copy
    seen: set[int] = set()
    for k, v in tensors.items():
        if v.data_ptr() in seen and v.numel() > 0:
            tensors[k] = v.clone()
        seen.add(tensors[k].data_ptr())
    metadata = {"format": FORMAT, "state": json.dumps(meta)}
    atomic_write(run / "checkpoint.safetensors", lambda tmp: save_file(tensors, tmp, metadata=metadata))
    write_derived(run, state)


def write_derived(run: Path, state: State, *, best_changed: bool = True) -> None:
    """``best.safetensors``, ``metrics.jsonl`` and ``checkpoint.json`` from the committed state."""
    from safetensors.torch import save_file

    if best_changed and state.best_weights is not None:
        atomic_write(run / "best.safetensors", lambda tmp: save_file(state.best_weights, tmp))

    def write_metrics(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(h) + "\n" for h in state.history)

    atomic_write(run / "metrics.jsonl", write_metrics)
    write_json(run / "checkpoint.json", {"epoch": state.epoch, "best": state.best, "resumes": state.resumes})


def load(run: Path, model: nn.Module, opt: torch.optim.Optimizer) -> State:
    """Restore the model, the optimizer and the RNG from the run's last commit; returns its :class:`State`.

    A missing, truncated or foreign checkpoint raises the error template naming ``--resume`` and the file; the run
    directory is not changed.
    """
    _extras.need("safetensors")
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = run / "checkpoint.safetensors"
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(path)
        if metadata.get("format") == FORMAT:
            meta = json.loads(metadata["state"])
            best_weights = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
        else:
            meta = _legacy_state(run)
            best_weights = None
        saved = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in saved.items()}
        if want != got:
            wrong = [k for k in want if k in got and want[k] != got[k]]
            what = (f"{wrong[0]}: {got[wrong[0]]} in checkpoint.safetensors, {want[wrong[0]]} from config.json"
                    if wrong else f"missing {sorted(set(want) - set(got))[:3]}, unexpected "
                    f"{sorted(set(got) - set(want))[:3]}")  # fmt: skip
            raise _checks.invalid("--resume", "a checkpoint of the model its config.json describes (not another "
                                  "run's, not an edited config)", f"{str(path)!r} ({what})")  # fmt: skip
        model.load_state_dict(saved)
        optim_state: dict = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, idx, name = k.split(".", 2)
                optim_state.setdefault(int(idx), {})[name] = v
        opt.load_state_dict({"state": optim_state, "param_groups": meta["param_groups"]})
        torch.set_rng_state(tensors["rng.torch"])
        device = next(model.parameters()).device
        if device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    except _checks.UsageError:
        raise
    except Exception as e:  # a missing, truncated or foreign file: one line, nothing changed in the run directory
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise _checks.invalid(
            "--resume",
            "a run directory with a readable checkpoint of the model its config.json describes",
            f"{str(path)!r} ({type(e).__name__}: {first[:300]})",
        ) from None
    state = State(meta["epoch"], meta["best"], meta["history"], meta.get("resumes", []), best_weights,
                  meta.get("first_loss"))  # fmt: skip
    if state.best_weights is None and state.best.get("epoch", 0) > 0:  # a legacy run: the best weights' own file
        state.best_weights = _read_tensors(run / "best.safetensors")
    return state


def committed(run: Path) -> bool:
    """Whether ``run`` has committed an epoch (its ``checkpoint.safetensors`` exists)."""
    return (run / "checkpoint.safetensors").exists()


def check_readable(run: Path) -> None:
    """The run's checkpoint exists and its header parses: checked before the data are read for a resume."""
    from safetensors import safe_open

    path = run / "checkpoint.safetensors"
    if not path.exists() and (run / "config.json").is_file():
        others = sorted(p.name for p in run.iterdir() if p.name not in ("config.json", ".lock"))[:5]
        raise _checks.invalid(
            "--resume",
            "a run directory with a checkpoint, or one stopped before its first epoch ended that holds only what "
            "embdrop writes before it",
            f"{str(run)!r} (no checkpoint; other files: {others})",
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            f.metadata()
    except Exception as e:
        raise _checks.invalid(
            "--resume", "a run directory with a readable checkpoint", f"{str(path)!r} ({type(e).__name__}: {e})"
        ) from None


def remove_partial_writes(run: Path) -> None:
    """Delete the temporary files of writes that a killed process left unfinished (call it holding the lock)."""
    for p in run.glob("*.tmp"):
        p.unlink(missing_ok=True)


def _legacy_state(run: Path) -> dict:
    """The state of a run directory written before the one-file commit: checkpoint.json and metrics.jsonl."""
    with open(run / "checkpoint.json", encoding="utf-8") as f:
        meta = json.load(f)
    path = run / "metrics.jsonl"
    history = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise _checks.invalid("--resume", "a metrics.jsonl of one JSON object per line",
                                      f"{str(path)!r} (line {number}: {e})") from None  # fmt: skip
            if row["epoch"] <= meta["epoch"]:
                history.append(row)
    if [h["epoch"] for h in history] != list(range(1, meta["epoch"] + 1)):
        raise _checks.invalid("--resume", f"a metrics.jsonl with a row for each epoch 1..{meta['epoch']}",
                              f"{str(path)!r} (epochs {[h['epoch'] for h in history]})")  # fmt: skip
    meta["history"] = history
    return meta


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except Exception as e:
        raise _checks.invalid(
            "--resume", "a readable safetensors file", f"{str(path)!r} ({type(e).__name__}: {e})"
        ) from None


class RunLock:
    """An exclusive lock on a run directory (``RUN/.lock``, holding the owner's pid and host), held while training.

    It is an advisory ``flock``: the kernel releases it when its process ends, however it ends, so a lock file left
    by a killed run is stale by construction and the next run takes it. A second writer gets the error template.
    """

    def __init__(self, run: Path) -> None:
        self.path = run / ".lock"
        self._fd: int | None = None
        self.created = False

    def acquire(self) -> RunLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            self.created = True
        except FileExistsError:
            fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise _checks.invalid(
                "run directory",
                "a run directory no other process is writing",
                f"{str(self.path.parent)!r} (locked by {owner})",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def release(self, *, remove: bool = False) -> None:
        """Drop the lock; ``remove`` also deletes the lock file if this lock created it (a run that failed before
        it wrote anything leaves nothing behind)."""
        if self._fd is not None:
            if remove and self.created:
                self.path.unlink(missing_ok=True)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
