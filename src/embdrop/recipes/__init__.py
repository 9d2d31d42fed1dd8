"""Recipes: one file per task-model pair, each a function returning a typed :class:`Config`, and :func:`train`.

A recipe module has ``DESCRIPTION``, ``config() -> Config``, ``task(config)`` (a :class:`embdrop.recipes.task.Task`:
the data, the loss and the evaluation) and ``build(config, task) -> nn.Module``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from types import ModuleType

import torch

from embdrop import _checks, _extras
from embdrop._io import read_json
from embdrop.recipes import (
    checkpoint,
    flights_entity,
    imdb_cnn_lstm,
    imdb_lstm,
    movielens_mf,
    ptb_lm,
    reviews_cnn_lstm,
    reviews_lstm,
    tabular_entity,
    text_cnn,
    text_cnn_lstm,
    text_lstm,
    translate_fr_en,
    wikitext2_lm,
)
from embdrop.recipes.config import Config, apply_overrides, fields, to_dict
from embdrop.recipes.loop import Summary, _distributed, check_train, fit
from embdrop.recipes.losses import keep_freed_memory

RECIPES: dict[str, ModuleType] = {
    "text-lstm": text_lstm,
    "text-cnn": text_cnn,
    "text-cnn-lstm": text_cnn_lstm,
    "tabular-entity": tabular_entity,
    "reviews-cnn-lstm": reviews_cnn_lstm,
    "reviews-lstm": reviews_lstm,
    "imdb-cnn-lstm": imdb_cnn_lstm,
    "imdb-lstm": imdb_lstm,
    "ptb-lm": ptb_lm,
    "wikitext2-lm": wikitext2_lm,
    "flights-entity": flights_entity,
    "movielens-mf": movielens_mf,
    "translate-fr-en": translate_fr_en,
}
DEFAULT = "reviews-cnn-lstm"


def recipe(name: str) -> ModuleType:
    return RECIPES[_checks.choice("recipe", name, tuple(RECIPES))]


def resolve(name: str, overrides: list[str] = ()) -> Config:
    """The recipe's config with the ``--set`` overrides applied.

    ``variant=NAME`` (recipes with ``VARIANTS``) picks the preset first, whatever its place among the overrides;
    the other fields are then set on top of it.
    """
    module = recipe(name)
    chosen = [o for o in overrides if o.partition("=")[0].strip() == "variant"]
    rest = [o for o in overrides if o not in chosen]
    if not chosen:
        return apply_overrides(module.config(), rest)
    if not hasattr(module, "VARIANTS"):
        raise _checks.invalid("--set", f"FIELD=VALUE with FIELD a field of {name} (it has no variants)", chosen[-1])
    return apply_overrides(module.config(variant=chosen[-1].partition("=")[2].strip()), rest)


def load_config(run: str | Path, argument: str, overrides: list[str] = ()) -> Config:
    """The resolved config of a run directory (its ``config.json``), with ``overrides`` on top."""
    saved = read_json(Path(run) / "config.json", "a run directory written by embdrop train", argument=argument)
    if not isinstance(saved, dict) or saved.get("recipe") not in RECIPES:
        raise _checks.invalid(argument, "a run directory written by embdrop train", repr(str(run)))
    known = fields(recipe(saved["recipe"]).config())
    items = [f"{k}={v}" for k, v in _flatten(saved).items() if k in known]
    if saved.get("variant") is not None:
        items.insert(0, f"variant={saved['variant']}")
    return resolve(saved["recipe"], items + list(overrides))


# Fields that a resume may change: when to stop and how to report. Any other field changes what the run means
# (its data, its model or its optimisation), so a resume that sets one is refused.
RESUMABLE = ("train.epochs", "train.patience", "train.mc", "train.log_every", "train.device", "train.threads")


def train(
    name: str | None = None,
    overrides: list[str] = (),
    out: str | Path | None = None,
    *,
    resume: str | Path | None = None,
    console=None,
) -> Summary:
    """Train a recipe into a new run directory (``out``, default ``runs/<recipe>-<time>``), or continue ``resume``.

    Everything a user gives is checked before the data are read; the run directory is locked while training (a
    second process writing it gets an error). With ``resume``, ``overrides`` may set only the fields of
    :data:`RESUMABLE`; the changes are written to ``config.json`` and recorded in the checkpoint's ``resumes``.
    Started by ``torchrun --nproc_per_node N`` it trains on N processes (DDP over gloo); see :func:`loop.fit`.
    """
    _extras.need("rich", "safetensors", "matplotlib")  # before anything is read or written
    _start_distributed()
    changes: list[dict] = []
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
        checkpoint.check_readable(run)
    else:
        config = resolve(name or DEFAULT, overrides)
        run = Path(out) if out is not None else Path("runs") / f"{config.recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
        run = _same_on_every_rank(run)
        if _rank() == 0:
            _check_new_run_dir(run)
    check_train(config.train, _distributed()[0])  # a wrong training field fails before the data are read
    keep_freed_memory()  # no page faults on every step's fresh activations (see recipes/losses.py)
    torch.manual_seed(config.train.seed)
    module = recipe(config.recipe)
    with _fields_named(config):
        task = module.task(config)  # reads the data: a wrong data.root fails here, before anything is written
        model = module.build(config, task)
    created, lock = False, None
    if _rank() == 0:
        argument = "--resume" if resume is not None else "--out"
        try:
            run.mkdir(parents=True)
            created = True
        except FileExistsError:
            pass
        except OSError as e:
            raise _checks.invalid(argument, "a directory that can be written", f"{str(run)!r} ({e.strerror})") from None
        lock = checkpoint.RunLock(run).acquire()
        if resume is None and any(p.name != ".lock" for p in run.iterdir()):  # another run started here meanwhile
            lock.release()
            raise _checks.invalid("--out", "a new or empty directory (continue a run with --resume)", repr(str(run)))
    _barrier()
    try:
        return fit(config, task, model, run, resume=resume is not None, console=console, resumes=changes)
    except BaseException:
        if lock is not None:
            lock.release(remove=True)
        if created and not (run / "checkpoint.safetensors").exists():
            shutil.rmtree(run, ignore_errors=True)  # nothing worth keeping: leave no half-made run behind
        raise
    finally:
        if lock is not None:
            lock.release()


def _check_new_run_dir(run: Path) -> None:
    """``--out`` must be a new or empty directory that this process can create or write."""
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


def _leaves(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _changes(old: Config, new: Config) -> dict[str, list]:
    """``{field: [old, new]}`` for every field that differs."""
    a, b = _leaves(to_dict(old)), _leaves(to_dict(new))
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
        self.values = _leaves(to_dict(config))

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


def _start_distributed() -> None:
    """Under torchrun (WORLD_SIZE > 1 in the environment), start the gloo process group once."""
    import os

    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _same_on_every_rank(run: Path) -> Path:
    """Rank 0's run directory (a default name holds the time, which the ranks may see differently)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return run
    box = [str(run)]
    dist.broadcast_object_list(box, src=0)
    return Path(box[0])


def _flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        if k in ("recipe", "variant"):
            continue
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = "None" if v is None else str(v)
    return out


__all__ = ["DEFAULT", "RECIPES", "Config", "Summary", "load_config", "recipe", "resolve", "to_dict", "train"]
