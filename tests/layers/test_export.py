"""torch.export of embdrop's layers in eval mode: dynamic batch and sequence length, torch's own ops only, the same
outputs (and the same in ONNX Runtime).

torch 2.13 fixes the time axis of its own ``nn.LSTM``/``nn.GRU`` in an exported program
(``torch.export.export(nn.LSTM(...), ..., dynamic_shapes={1: Dim("t")})`` raises "specialized it to be a
constant"); embdrop's recurrent layers export their steps as torch's ``scan`` instead, so T stays free.
"""

import itertools

import pytest
import torch
from torch import nn
from torch.export import Dim

import embdrop

BATCH = Dim("batch", min=1, max=1024)
TIME = Dim("t", min=1, max=4096)


def exported_ops(program) -> set[str]:
    """Every op the program calls, the steps of a scan included, as "namespace::name" or "higher_order.scan"."""
    ops = set()
    for module in program.graph_module.modules():
        for n in module.graph.nodes if hasattr(module, "graph") else ():
            if n.op != "call_function":
                continue
            t = n.target
            if isinstance(t, torch._ops.HigherOrderOperator):
                ops.add(f"higher_order.{t.name()}")
            elif isinstance(t, torch._ops.OpOverload):
                ops.add(t.name())
            else:
                ops.add(f"{getattr(t, '__module__', '?')}.{getattr(t, '__name__', t)}")
    return ops


def assert_torch_ops_only(program) -> None:
    ops = exported_ops(program)
    # aten ops, torch's scan, and Python's operators on symbolic sizes and tuples
    allowed = lambda o: o.startswith(("aten::", "_operator.")) or o == "higher_order.scan"  # noqa: E731
    assert all(allowed(o) for o in ops), sorted(o for o in ops if not allowed(o))


def onnx_runs_it(program, inputs: tuple, tmp_path, want) -> None:
    """The program written by torch.onnx.export gives ``want`` in ONNX Runtime."""
    import contextlib
    import io
    import warnings

    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(program, (), str(path), external_data=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}  # an input the graph does not use is left out
    given = zip(program.graph_signature.user_inputs, inputs, strict=True)
    feed = {name: t.numpy() for name, t in given if name in names}
    got = torch.from_numpy(session.run(None, feed)[0])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.slow  # an export of torch's own layer (3 s)
@pytest.mark.filterwarnings("ignore:The tensor attributes")
def test_torch_lstm_itself_fixes_the_time_axis():
    """Why embdrop exports its steps as a scan: torch's own layer fixes T (if this ever passes, the scan can go)."""
    with pytest.raises(Exception, match="specialized it to be a constant"):
        torch.export.export(nn.LSTM(4, 3, batch_first=True).eval(), (torch.randn(2, 5, 4),),
                            dynamic_shapes=({0: BATCH, 1: Dim("t")},))  # fmt: skip


class _Recurrent(nn.Module):
    def __init__(self, layer: nn.Module, padded: str) -> None:
        super().__init__()
        self.layer, self.padded = layer, padded

    def forward(self, x, aux):
        out = self.layer(x) if self.padded == "none" else self.layer(x, lengths=aux)
        return out[0]


def _aux(padded: str, lengths: list[int], T: int):
    n = torch.tensor(lengths)
    if padded == "lengths":
        return n
    if padded == "post-mask":
        return torch.arange(T).unsqueeze(0) < n.unsqueeze(1)  # (B, T)
    if padded == "pre-mask":
        return torch.arange(T).unsqueeze(0) >= (T - n).unsqueeze(1)
    return torch.zeros(len(lengths))


# A few in the default suite, every combination under -m slow (each export takes a second or more).
FAST = {("LSTM", False, 1, "post-mask"), ("SimpleRNN", False, 1, "none")}  # the rest under -m slow (2-6 s each)
COMBINATIONS = [
    *itertools.product(["LSTM", "GRU", "SimpleRNN"], [False, True], [1, 2], ["none", "lengths", "pre-mask"]),
    ("LSTM", False, 1, "post-mask"),
    ("GRU", True, 2, "post-mask"),
]


@pytest.mark.parametrize(
    "kind, bidirectional, layers, padded",
    [c if c in FAST else pytest.param(*c, marks=pytest.mark.slow) for c in COMBINATIONS],
)
def test_every_recurrent_configuration_exports_with_a_dynamic_batch_and_length(
    kind, bidirectional, layers, padded, tmp_path
):
    torch.manual_seed(0)
    layer = getattr(embdrop, kind)(8, 6, dropout=0.3, recurrent_dropout=0.3, weight_dropout=0.2,
                                   num_layers=layers, bidirectional=bidirectional)  # fmt: skip
    model = _Recurrent(layer, padded).eval()
    T = 7
    x, aux = torch.randn(3, T, 8), _aux(padded, [7, 5, 2], T)
    aux_dims = {0: BATCH} if padded in ("lengths", "none") else {0: BATCH, 1: TIME}
    program = torch.export.export(model, (x, aux), dynamic_shapes=({0: BATCH, 1: TIME}, aux_dims))
    assert_torch_ops_only(program)
    assert "higher_order.scan" in exported_ops(program)
    # another batch size, another length, other lengths
    x2, aux2 = torch.randn(5, 11, 8), _aux(padded, [1, 11, 3, 6, 10], 11)
    want = model(x2, aux2)
    torch.testing.assert_close(program.module()(x2, aux2), want, atol=1e-5, rtol=1e-5)
    onnx_runs_it(program, (x2, aux2), tmp_path, want)


@pytest.mark.parametrize(
    "name, make, ids",
    [
        ("Embedding with dropout", lambda: embdrop.Embedding(20, 4, padding_idx=0, dropout=0.2), True),
        ("HashEmbedding", lambda: embdrop.HashEmbedding(64, 4, num_hashes=2), True),
        ("WordDropout", lambda: embdrop.WordDropout(0.3, unk_id=1, padding_idx=0), True),
        ("Dropout", lambda: embdrop.Dropout(0.3), False),
        ("SpatialDropout1D", lambda: embdrop.SpatialDropout1D(0.3), False),
        ("TokenDropout", lambda: embdrop.TokenDropout(0.3), False),
        ("LSTM zoneout", lambda: embdrop.LSTM(8, 6, zoneout=0.1), False),
        ("GRU zoneout", lambda: embdrop.GRU(8, 6, zoneout=0.1, recurrent_dropout=0.2), False),
    ],
)
def test_every_layer_exports_in_eval_mode(name, make, ids):
    torch.manual_seed(0)
    layer = make().eval()
    x = torch.randint(1, 20, (3, 7)) if ids else torch.randn(3, 7, 8)
    program = torch.export.export(layer, (x,), dynamic_shapes=({0: BATCH, 1: TIME},))
    assert_torch_ops_only(program)
    x2 = torch.randint(1, 20, (5, 9)) if ids else torch.randn(5, 9, 8)
    got, want = program.module()(x2), layer(x2)
    got, want = (got[0], want[0]) if isinstance(want, tuple) else (got, want)
    torch.testing.assert_close(got, want)


def test_dropconnect_exports_in_eval_mode():
    layer = embdrop.DropConnect(nn.Linear(8, 4), 0.3).eval()
    program = torch.export.export(layer, (torch.randn(3, 8),), dynamic_shapes=(({0: BATCH},),))
    assert_torch_ops_only(program)
    x = torch.randn(6, 8)
    torch.testing.assert_close(program.module()(x), layer(x))


def test_a_model_of_embdrop_layers_exports_as_the_issue_tried_it():
    """Embedding(padding_idx=0, dropout) -> SpatialDropout1D -> LSTM(dropout, recurrent_dropout) -> Linear, eval:
    the model that failed with GuardOnDataDependentSymNode in the id range check."""

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = embdrop.Embedding(50, 8, padding_idx=0, dropout=0.1)
            self.spatial = embdrop.SpatialDropout1D(0.2)
            self.lstm = embdrop.LSTM(8, 6, dropout=0.3, recurrent_dropout=0.3)
            self.dense = nn.Linear(6, 1)

        def forward(self, ids):
            out, _ = self.lstm(self.spatial(self.embedding(ids)))
            return self.dense(out[:, -1])

    model = Model().eval()
    program = torch.export.export(model, (torch.randint(1, 50, (3, 7)),), dynamic_shapes=({0: BATCH, 1: TIME},))
    assert_torch_ops_only(program)
    ids = torch.randint(0, 50, (4, 12))
    torch.testing.assert_close(program.module()(ids), model(ids))
    # eager calls still check their ids: tracing skips only the checks that read values
    with pytest.raises(ValueError, match="argument 'ids'"):
        model(torch.full((2, 7), 50))


@pytest.mark.slow  # four exports (3 s)
def test_an_export_at_a_fixed_length_does_not_fix_the_next_ones():
    """torch 2.13 keeps what it traced of a scan on a code object every scan shares: without clearing it, a dynamic
    export after a fixed-length one failed with "the generated guard 50 != L['x'].size()[1]"."""
    for T, dims in ((50, {0: BATCH}), (7, {0: BATCH, 1: TIME}), (11, {0: BATCH}), (9, {0: BATCH, 1: TIME})):
        layer = embdrop.GRU(8, 6).eval()
        program = torch.export.export(layer, (torch.randn(3, T, 8),), dynamic_shapes=(dims,))
        x = torch.randn(2, T if len(dims) == 1 else T + 4, 8)
        torch.testing.assert_close(program.module()(x)[0], layer(x)[0])
