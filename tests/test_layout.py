"""The package's shape, read from its source: imports run one way and no file grows past what one sitting reads.

Every import counts, the ones inside functions included (they are how a cycle hides). The rules are those of
README's Layout section: cli -> recipes -> viz, interop, layers, data; layers -> functional -> kernels.
"""

import ast
from pathlib import Path

import embdrop

ROOT = Path(embdrop.__file__).parent
MAX_PY_LINES = 400
MAX_CPP_LINES = 450

# What each package may import (besides the torch-free helpers at the top: _checks, _cache, _io, _extras, stats).
# "api": the public names of ``embdrop/__init__.py`` (the layers, MC dropout, the Keras import), for the packages
# that build models as a user does.
ALLOWED = {
    "kernels": set(),
    "functional": {"kernels"},
    "data": {"functional"},
    "layers": {"functional", "data"},
    "init": {"layers"},
    "interop": {"layers", "data", "init", "functional"},
    "viz": {"layers", "data", "functional", "api"},
    "recipes": {"layers", "data", "functional", "init", "interop", "viz", "api"},
}
HELPERS = {"_checks", "_cache", "_io", "_extras", "stats"}


def _unit(path: Path) -> str:
    """The package a file belongs to: its top folder under embdrop/, or its own name for a top-level module."""
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _is_unit(name: str) -> bool:
    return (ROOT / name).is_dir() or (ROOT / f"{name}.py").is_file()


def _imports(path: Path) -> set[str]:
    """The embdrop units ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = list(path.relative_to(ROOT).parent.parts)[
                    : len(path.relative_to(ROOT).parent.parts) - node.level + 1
                ]
                mods = [".".join(["embdrop", *base, *([node.module] if node.module else [])])]
            else:
                mods = [node.module or ""]
            if mods[0] == "embdrop":  # from embdrop import X: X is the unit, or the public API for a class
                mods = [f"embdrop.{a.name}" if _is_unit(a.name) else "embdrop.api" for a in node.names]
        elif isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        else:
            continue
        for m in mods:
            parts = m.split(".")
            if parts[0] == "embdrop" and len(parts) > 1:
                found.add(parts[1])
    return found


def _graph() -> dict[str, dict[str, set[str]]]:
    """unit -> imported unit -> the files that import it."""
    graph: dict[str, dict[str, set[str]]] = {}
    for path in ROOT.rglob("*.py"):
        src = _unit(path)
        if src == "__init__":
            continue  # the package's lazy re-exports
        for dst in _imports(path) - {src}:
            graph.setdefault(src, {}).setdefault(dst, set()).add(str(path.relative_to(ROOT)))
    return graph


def test_imports_run_one_way():
    graph = _graph()
    wrong = []
    for src, allowed in ALLOWED.items():
        for dst, files in graph.get(src, {}).items():
            if dst not in allowed | HELPERS:
                wrong.append(f"{src} -> {dst} ({', '.join(sorted(files))})")
    for helper in HELPERS:  # the helpers import only each other
        for dst, files in graph.get(helper, {}).items():
            if dst not in HELPERS:
                wrong.append(f"{helper} -> {dst} ({', '.join(sorted(files))})")
    assert not wrong, "imports against the layout:\n" + "\n".join(wrong)


def test_no_import_cycle_between_packages():
    graph = {src: set(dsts) for src, dsts in _graph().items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle.extend(path[path.index(nxt) :] + [node, nxt] if nxt in path else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, path + [node]):
                return True
        state[node] = 2
        return False

    for node in sorted(graph):
        if state.get(node) is None and visit(node, []):
            break
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_the_checker_sees_an_import_inside_a_function(tmp_path):
    # the rules above are only as good as the parser: an import in a function body, relative or absolute, is found
    fake = ROOT / "kernels" / "reference.py"
    assert _unit(fake) == "kernels"
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from embdrop.layers import LSTM\n    import embdrop.recipes.loop\n")
    assert _imports(source) == {"layers", "recipes"}


def test_no_file_past_one_sitting():
    long = []
    for path in sorted(ROOT.rglob("*")):
        limit = MAX_PY_LINES if path.suffix == ".py" else MAX_CPP_LINES if path.suffix in (".cpp", ".h") else None
        if limit is not None:
            n = len(path.read_text().splitlines())
            if n > limit:
                long.append(f"{path.relative_to(ROOT)}: {n} lines (at most {limit})")
    assert not long, "files too long to read in one sitting:\n" + "\n".join(long)
