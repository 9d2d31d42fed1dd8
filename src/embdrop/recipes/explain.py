"""``embdrop config RECIPE [--set F=V]``: every field of a recipe's config, its type, its value, its default and
what it means, without training anything (as LitGPT's ``-h`` and torchtune's ``tune cp`` show theirs).

A field's meaning is the comment written beside it (or on the lines just above it) in the config dataclass that
declares it, read from that class's source: the code and its help cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import io
import tokenize
import typing
from dataclasses import dataclass

from embdrop.recipes.config import Config, fields


@dataclass
class Field:
    name: str  # "train.lr"
    type: str
    value: object
    default: object
    meaning: str


@functools.cache
def comments(cls: type) -> dict[str, str]:
    """``{field: comment}`` of a dataclass and its bases: the comment on a field's line, or the comment lines just
    above it."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):  # no source (a frozen application): no meanings
            continue
        pending: list[str] = []
        own = {f.name for f in dataclasses.fields(klass)}
        lines: dict[int, str] = {}
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                lines[tok.start[0]] = tok.string.lstrip("#").strip()
        for number, line in enumerate(source.splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("#"):
                pending.append(lines.get(number, ""))
                continue
            name = stripped.split(":", 1)[0].strip()
            if ":" in stripped and name in own:
                text = " ".join(pending + ([lines[number]] if number in lines else []))
                if text.strip():
                    out[name] = " ".join(text.split())
            pending = []
    return out


def _type_name(kind) -> str:
    text = str(kind) if not isinstance(kind, type) else kind.__name__
    return text.replace("typing.", "").replace("NoneType", "None").replace("Optional", "")


def describe(config: Config, default: Config) -> list[Field]:
    """Every leaf field of ``config`` with its value, the value in ``default`` (the recipe's preset) and its
    meaning."""
    out = []
    for name, kind in fields(config).items():
        section, _, leaf = name.rpartition(".")
        owner = functools.reduce(getattr, section.split("."), config) if section else config
        base = functools.reduce(getattr, section.split("."), default) if section else default
        meaning = comments(type(owner)).get(leaf, "")
        out.append(Field(name, _type_name(kind), getattr(owner, leaf), getattr(base, leaf, None), meaning))
    return out


def render(config: Config, default: Config) -> str:
    """The table ``embdrop config`` prints: one field per line."""
    rows = describe(config, default)
    width = max(len(r.name) for r in rows)
    tw = max(len(r.type) for r in rows)
    lines = [f"{config.recipe}" + (f" (variant {config.variant})" if getattr(config, "variant", None) else "")
             + ": every field, as --set FIELD=VALUE takes it"]  # fmt: skip
    for r in rows:
        value = repr(r.value)
        changed = "" if r.value == r.default else f" (default {r.default!r})"
        meaning = f"  # {r.meaning}" if r.meaning else ""
        lines.append(f"{r.name:{width}}  {r.type:{tw}}  = {value}{changed}{meaning}")
    return "\n".join(lines)


__all__ = ["Field", "comments", "describe", "render", "typing"]
