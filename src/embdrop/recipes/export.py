"""``embdrop export``: a run's trained model (see :func:`embdrop.recipes.deploy.load_run`) written as an ONNX file
or a ``torch.export`` program with a dynamic batch (and length, where the model takes any), then checked: the
written file, run on two input shapes, gives the eager model's outputs."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from embdrop import _checks
from embdrop._io import atomic_write, write_json
from embdrop.recipes.deploy import FORMATS, LoadedRun, _NextWord, load_run


def _dynamic_shapes(loaded: LoadedRun) -> tuple[dict, ...]:
    """The batch axis dynamic; the time axis too where the model allows (``Dim.AUTO``: a model whose layers fix the
    length, a Flatten before a Dense, exports at the example's length instead of failing)."""
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    dims = {"batch": batch, "time": torch.export.Dim.AUTO}
    shapes = tuple({axis: dims[name] for axis, name in axes.items()} for axes in loaded.axes)
    if isinstance(loaded.model, _NextWord):  # forward(ids, *state): the state is one argument to torch.export
        return (shapes[0], shapes[1:])
    return shapes


def dynamic_length(program, loaded: LoadedRun) -> bool:
    """Whether the exported program takes any sequence length (its first input's time axis is symbolic)."""
    time = [axis for axis, name in loaded.axes[0].items() if name == "time"]
    if not time:
        return False
    first = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == loaded.inputs[0])
    return isinstance(first.meta["val"].shape[time[0]], torch.SymInt)


def _trace(loaded: LoadedRun):
    """The model as a ``torch.export`` program with a dynamic batch (and length); a layer that cannot be traced is
    named."""
    try:
        return torch.export.export(loaded.model, loaded.example, dynamic_shapes=_dynamic_shapes(loaded))
    except Exception as e:  # say which module the trace stopped in
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise _checks.invalid("RUN_DIR", "a model torch.export can trace in eval mode",
                              f"{type(loaded.model.__dict__.get('model', loaded.model)).__name__}: "
                              f"{type(e).__name__}: {first}") from None  # fmt: skip


def export(run: str | Path, out: str | Path, fmt: str = "onnx", log=print) -> tuple[Path, Path, float | None]:
    """Write the run's model to ``out`` (ONNX, or a ``torch.export`` archive with ``fmt="pt2"``) and its
    preprocessing to ``out`` + ``.json`` (with ``dynamic_length``: whether the file takes any sequence length);
    run the written file on the example inputs and on another batch size and length against the torch model.
    Returns (model file, JSON file, the largest difference; None where ONNX Runtime is
    not installed to run an ONNX file)."""
    _checks.choice("--format", fmt, FORMATS)
    out = Path(out)
    if out.is_dir() or not out.parent.is_dir():
        raise _checks.invalid("--out", "a file path in an existing directory", repr(str(out)))
    loaded = load_run(run)
    program = _trace(loaded)
    meta = out.with_name(out.name + ".json")
    if fmt == "pt2":
        atomic_write(out, lambda tmp: torch.export.save(program, tmp))
    else:
        import warnings

        from embdrop import _extras

        _extras.need("onnx", "onnxscript")

        def write(tmp: str) -> None:
            import contextlib
            import io
            import logging

            quiet = logging.getLogger("torch.onnx")
            level = quiet.level
            quiet.setLevel(logging.ERROR)  # its notes (torchvision absent, ...) are not the user's concern
            try:
                with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                    warnings.simplefilter("ignore")  # and its progress lines go to stdout
                    torch.onnx.export(program, (), tmp, input_names=loaded.inputs, output_names=loaded.outputs,
                                      verbose=False, external_data=False)  # fmt: skip
            finally:
                quiet.setLevel(level)

        def write_named(tmp: str) -> None:
            write(tmp)
            _name_dims(tmp, loaded)

        atomic_write(out, write_named)
    dynamic = dynamic_length(program, loaded)
    write_json(meta, {**loaded.preprocess, "dynamic_length": dynamic})
    diff = check(loaded, out, fmt, dynamic)
    return out, meta, diff


def _name_dims(path: str, loaded: LoadedRun) -> None:
    """The ONNX file's symbolic dimensions named "batch" and "time" (torch writes its own symbols, "s10")."""
    import onnx

    model = onnx.load(path)
    names = {}
    inputs = {v.name: v for v in model.graph.input}
    for name, axes in zip(loaded.inputs, loaded.axes, strict=True):
        if name in inputs:
            dims = inputs[name].type.tensor_type.shape.dim
            names.update({dims[axis].dim_param: meaning for axis, meaning in axes.items() if dims[axis].dim_param})
    for v in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        for d in v.type.tensor_type.shape.dim:
            if d.dim_param in names:
                d.dim_param = names[d.dim_param]
    onnx.save(model, path)


def _other_shape(loaded: LoadedRun, inputs: tuple[Tensor, ...], dynamic: bool) -> tuple[Tensor, ...]:
    """The example rows repeated to a batch of 5, and, where the length is dynamic, two steps longer (the first step
    repeated in front: a pre-padded row stays pre-padded, a post-padded one post-padded): a shape the trace did not
    see."""
    out = []
    for t, axes in zip(inputs, loaded.axes, strict=True):
        for axis, name in axes.items():
            if name == "batch":
                t = torch.cat([t] * 3, dim=axis).narrow(axis, 0, 5)
            elif dynamic:
                t = torch.cat([t.narrow(axis, 0, 1)] * 2 + [t], dim=axis)
        out.append(t)
    return tuple(out)


def _outputs(result) -> list[Tensor]:
    return list(result) if isinstance(result, (tuple, list)) else [result]


def check(loaded: LoadedRun, path: Path, fmt: str, dynamic: bool = False) -> float | None:
    """The largest absolute difference between the written file and the torch model, over every output, on the
    example inputs and on another shape (:func:`_other_shape`); None for ONNX without ONNX Runtime installed."""
    worst = 0.0
    for inputs in (loaded.example, _other_shape(loaded, loaded.example, dynamic)):
        with torch.no_grad():
            want = _outputs(loaded.model(*inputs))
        if fmt == "pt2":
            got = _outputs(torch.export.load(path).module()(*inputs))
        else:
            try:
                import onnxruntime
            except ImportError:
                return None
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            used = {i.name for i in session.get_inputs()}  # an input the graph never reads is left out of the file
            feed = {name: t.numpy() for name, t in zip(loaded.inputs, inputs, strict=True) if name in used}
            got = [torch.from_numpy(a) for a in session.run(None, feed)]
        if len(got) != len(want) or any(g.shape != w.shape for g, w in zip(got, want, strict=False)):
            return float("inf")
        worst = max([worst] + [float((g.double() - w.double()).abs().max()) for g, w in zip(got, want, strict=True)])
    return worst
