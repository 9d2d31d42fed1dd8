"""``embdrop config RECIPE [--set F=V]``: every field of a recipe's config, its type, its value, its default and
what it means, without training anything (as LitGPT's ``-h`` and torchtune's ``tune cp`` show theirs).

A field's meaning is declared with the field itself (:func:`embdrop.recipes.config.setting`), and a field of
choices is a ``Literal`` whose values are listed here and checked in one place (:func:`embdrop.recipes.config.check`).
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass

from embdrop.recipes.config import Config, choices, fields, marks


@dataclass
class Field:
    name: str  # "train.lr"
    type: str
    value: object
    default: object
    meaning: str


def comments(cls: type) -> dict[str, str]:
    """``{field: meaning}`` of a config dataclass and its bases, as each field declares it (:func:`setting`)."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(cls) if f.metadata.get("help")}


def _type_name(kind) -> str:
    allowed = choices(kind)
    if allowed is not None:  # Literal["adam", "sgd"] -> 'adam' | 'sgd'
        return " | ".join(map(repr, allowed)) + (" | None" if type(None) in typing.get_args(kind) else "")
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
        shown = "float in [0, 1)" if "rate" in marks(type(owner), leaf) else _type_name(kind)
        out.append(Field(name, shown, getattr(owner, leaf), getattr(base, leaf, None), meaning))
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
