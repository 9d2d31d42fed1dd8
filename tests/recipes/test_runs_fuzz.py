"""Run directories as a user may hand them to ``predict`` and ``train --resume``: any field of config.json set to any
JSON value or removed, classes.json and vocab.json replaced by any JSON, the weights' bytes damaged. Each is read or
refused with a UsageError in bounded memory, never another exception, and the directory is left as it was."""

import functools
import hashlib
import json
import shutil

from hypothesis import strategies as st

from embdrop import recipes
from embdrop.recipes.predict import predict
from fuzz_support import damaged, folder, fuzz, refused_or_read

TINY = ["data.maxlen=20", "model.hidden=4", "model.embedding_dim=8", "train.batch_size=256", "train.log_every=0",
        "train.threads=1", "train.epochs=1"]  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@functools.cache
def finished_run() -> str:
    import tempfile

    from rich.console import Console

    root = tempfile.mkdtemp(prefix="embdrop-fuzz-run-")
    recipes.train("reviews-lstm", TINY, f"{root}/run", console=Console(file=open("/dev/null", "w")))  # noqa: SIM115
    return f"{root}/run"


def digest(run):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.iterdir()) if p.is_file()}


def leaves(d, prefix=()):
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from leaves(v, (*prefix, k))
        else:
            yield (*prefix, k)


def set_leaf(data: dict, pick: int, value, drop: bool) -> dict:
    """``data`` with its leaf number ``pick`` (in sorted order, wrapping) set to ``value``, or removed."""
    paths = sorted(leaves(data))
    path = paths[pick % len(paths)]
    node = data
    for k in path[:-1]:
        node = node[k]
    if drop:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


def read_back(run):
    before = digest(run)
    size = sum(p.stat().st_size for p in run.iterdir() if p.is_file())
    refused_or_read(lambda: predict(run, ["good tea", "awful"]), size)
    assert digest(run) == before


def config_damage(example):
    pick, value, drop = example
    with folder() as d:
        run = shutil.copytree(finished_run(), d / "run")
        config = set_leaf(json.loads((run / "config.json").read_text()), pick, value, drop)
        (run / "config.json").write_text(json.dumps(config))
        read_back(run)


def side_file_damage(example):
    which, key, item, whole, value = example
    with folder() as d:
        run = shutil.copytree(finished_run(), d / "run")
        name = ["classes.json", "vocab.json", "inputs.json"][which]
        original = json.loads((run / name).read_text())
        if whole:
            pass
        elif isinstance(original, dict):  # one of its keys set to the value, or one item of a list under it
            k = sorted(original)[key % len(original)]
            inner = original[k]
            if isinstance(inner, list) and inner and item % 2:
                value = [value if i == item % len(inner) else x for i, x in enumerate(inner)]
            value = {**original, k: value}
        elif isinstance(original, list) and original:  # one of its items
            value = [value if i == item % len(original) else x for i, x in enumerate(original)]
        (run / name).write_text(json.dumps(value))
        read_back(run)


def bytes_damage(example):
    which, cut, where, junk = example
    with folder() as d:
        run = shutil.copytree(finished_run(), d / "run")
        name = ["best.safetensors", "config.json", "vocab.json", "classes.json"][which % 4]
        data = (run / name).read_bytes()
        for bad in damaged(data, cut, where, junk):
            (run / name).write_bytes(bad)
            read_back(run)


test_config_damage, test_config_damage_many = fuzz(st.tuples(st.integers(0, 200), JSON, st.booleans()),
                                                   config_damage)  # fmt: skip
test_side_file_damage, test_side_file_damage_many = fuzz(
    st.tuples(st.integers(0, 2), st.integers(0, 9), st.integers(0, 99), st.booleans(), JSON), side_file_damage
)
test_bytes_damage, test_bytes_damage_many = fuzz(
    st.tuples(st.integers(0, 3), st.integers(0, 10**6), st.integers(0, 10**6), st.binary(min_size=1, max_size=8)),
    bytes_damage,
)


def report_damage(example):
    from embdrop.viz import report

    which, pick, value, drop = example
    with folder() as d:
        run = shutil.copytree(finished_run(), d / "run")
        name = ["config.json", "summary.json", "metrics.jsonl"][which]
        if name == "metrics.jsonl":
            rows = [json.loads(line) for line in (run / name).read_text().splitlines()]
            key = sorted(rows[0])[pick % len(rows[0])]
            rows[0] = {k: v for k, v in rows[0].items() if k != key} if drop else {**rows[0], key: value}
            (run / name).write_text("\n".join(json.dumps(r) for r in rows))
        else:
            data = set_leaf(json.loads((run / name).read_text()), pick, value, drop)
            (run / name).write_text(json.dumps(data))
        before = digest(run)
        refused_or_read(lambda: report.write([run], d / "report.html", log=lambda line: None), 100_000)
        assert digest(run) == before


# a report takes about 4 s to draw: 30 damaged runs under -m slow, none in the default suite (its 4 minutes)
_, test_report_damage_many = fuzz(
    st.tuples(st.integers(0, 2), st.integers(0, 200), JSON, st.booleans()), report_damage, share=0.05
)
