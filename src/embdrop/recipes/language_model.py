"""Word-level LSTM language models (``ptb-lm``, ``wikitext2-lm``): the task, the model and the four variants.

``variant`` picks a preset (sizes, dropouts, schedule); any field can then be changed with ``--set``:

- ``none``: Zaremba et al. 2014 "small": 2 x 200, no dropout, SGD halved each epoch after the 4th, 13 epochs,
  batch 20, BPTT 20, clipping 5, init U(-0.1, 0.1). Paper: 114.5 test perplexity on PTB.
- ``naive``: Zaremba "medium": 2 x 650, dropout 0.5 on the non-recurrent connections with a new mask at every
  step (the LSTM's ``variational=False``), none on the recurrent ones; 39 epochs, lr / 1.2 after the 6th, BPTT 35,
  init U(-0.05, 0.05). Paper: 82.7.
- ``variational``: Gal & Ghahramani 2016 "medium", untied: the same size and schedule, masks fixed over time on the
  layers' inputs and the output (p = 0.35) and on the recurrent state (p = 0.2), each gate its own mask (the first
  layer's input excepted: one mask on the embedding output, shared by the gates), and embedding dropout on word
  types (p = 0.2); weight decay 1e-7 per step as in Gal's code. Paper: 79.7 (78.6 with MC dropout, ``--mc N``: by
  default Gal's test, see ``data.mc_masks``).
- ``awd``: AWD-LSTM (Merity et al. 2017) at a size this machine can train: embedding dropout 0.1 (per batch),
  locked dropout 0.4 on the embedding, 0.25 between layers and 0.4 on the output, weight drop 0.5 on the recurrent
  weights, AR 2 / TAR 1, tied weights, SGD lr 30, clipping 0.25, variable BPTT 70, batch 40.

The model carries its (h, c) state from one BPTT window to the next (detached), as all four papers do.

Zaremba's loss sums the T steps of a window (and averages over the batch) with lr 1 and gradient-norm clipping at 5;
here the loss is the mean over all B*T tokens, so the presets use lr = T and clip = 5 / T: the same updates.
Gal's code then subtracts 1e-7 * w after every update, outside the learning rate; torch's SGD multiplies
``weight_decay`` by lr = T, so the ``variational`` preset has 1e-7 / T: the same decay while the rate is at its start,
and smaller by the schedule's factor after (where Gal's stays 1e-7; a shrinkage of about 0.5% of the weights over the
whole run in Gal's case, so the difference is small). The schedules follow the papers' words ("after the 6th
epoch"); the Lua code of both divides the rate at the end of every epoch numbered above 6, so its first smaller rate
is epoch 8's: ``--set train.decay_after=7`` (5 for ``none``) follows the code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from embdrop import LSTM, Dropout, Embedding, LockedDropout, RecurrentMasks, _checks
from embdrop.data import Vocab, batchify, bptt_batches, load_dataset, num_bptt_batches
from embdrop.recipes.config import Config
from embdrop.recipes.losses import linear_cross_entropy
from embdrop.recipes.presets import VARIANTS, LmData, LmModel, ptb, wikitext2  # noqa: F401 (re-exported)
from embdrop.recipes.task import Task

MC_MASKS = ("stream", "window")


@dataclass
class LmMasks:
    """Masks of an :class:`LstmLm` held fixed over a stream; None where a layer draws its own.

    Attributes:
        input: (B, 1, E) keep-mask of the embedding output's locked dropout.
        rnns: one :class:`~embdrop.RecurrentMasks` (or None) per LSTM layer.
        output: (B, 1, H) keep-mask of the last layer's output.
    """

    input: Tensor | None = None
    rnns: list[RecurrentMasks | None] | None = None
    output: Tensor | None = None


class LstmLm(nn.Module):
    """Embedding -> [dropout] -> L x LSTM (each with its input dropout) -> [dropout] -> Linear(V)."""

    def __init__(self, vocab_size: int, m: LmModel) -> None:
        super().__init__()
        _checks.choice("model.embedding_dropout_mode", m.embedding_dropout_mode, ("sample", "batch"))
        if m.recurrent_dropout > 0 and not m.variational:
            raise _checks.invalid("model.recurrent_dropout", "0.0 with model.variational=false", m.recurrent_dropout)
        self.embedding = Embedding(
            vocab_size, m.embedding_dim, dropout=m.embedding_dropout, dropout_mode=m.embedding_dropout_mode
        )
        # The first layer's input dropout and the output dropout are layers of their own; between layers it is the
        # next LSTM's `dropout` (locked when variational, a fresh mask per step when not).
        drop = LockedDropout if m.variational else Dropout
        self.input_dropout = drop(m.input_dropout)
        sizes = [m.hidden] * m.layers
        if m.tie:
            sizes[-1] = m.embedding_dim
        inputs = [m.embedding_dim, *sizes[:-1]]
        drops = [0.0] + [m.hidden_dropout] * (m.layers - 1)
        self.rnns = nn.ModuleList(
            LSTM(c, h, dropout=p, recurrent_dropout=m.recurrent_dropout, weight_dropout=m.weight_dropout,
                 variational=m.variational or p == 0)
            for c, h, p in zip(inputs, sizes, drops, strict=True)
        )  # fmt: skip
        self.output_dropout = drop(m.output_dropout)
        self.decoder = nn.Linear(sizes[-1], vocab_size)
        if m.init_range > 0:  # Zaremba: every weight U(-r, r)
            for p in self.parameters():
                nn.init.uniform_(p, -m.init_range, m.init_range)
        else:  # AWD-LSTM: embedding U(-0.1, 0.1), softmax bias 0, the LSTMs their own init
            nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
            nn.init.zeros_(self.decoder.bias)
        if m.tie:
            self.decoder.weight = self.embedding.weight
        self.ar, self.tar = m.ar, m.tar

    def sample_masks(self, batch: int, *, generator: torch.Generator | None = None) -> LmMasks:
        """The masks of ``batch`` rows that stay fixed over time: the locked dropouts' (B, 1, C) and the variational
        LSTMs' (see :class:`~embdrop.RecurrentMasks`); None for a layer that draws a new mask every step (naive
        dropout), or that has none. Passed to ``forward(masks=)`` window after window, they make each row one
        sampled network over a whole stream (Gal's MC-dropout test). Embedding dropout is not included, and an
        LSTM with weight drop is left to draw its own masks at every call: its weight mask is shared by all rows,
        so holding it would give every sample the same dropped weights for the whole stream."""
        w = self.decoder.weight
        kw = {"generator": generator}

        def locked(drop: nn.Module, size: int) -> Tensor | None:
            fixed = isinstance(drop, LockedDropout) and drop.p > 0
            return drop.sample_masks(w.new_empty(batch, 1, size), **kw) if fixed else None  # (B, 1, C)

        rnns = [rnn.sample_masks(w.new_empty(batch, 1, rnn.input_size), **kw)
                if rnn.variational and rnn.weight_dropout == 0 else None for rnn in self.rnns]  # fmt: skip
        return LmMasks(locked(self.input_dropout, self.rnns[0].input_size), rnns,
                       locked(self.output_dropout, self.rnns[-1].hidden_size))  # fmt: skip

    def forward(
        self, ids: Tensor, state: list | None = None, *, decode: bool = True, masks: LmMasks | None = None
    ) -> tuple[Tensor, list, Tensor, Tensor]:
        """ids (B, T) -> logits (B, T, V), the new state per layer, and the last layer's output without and with
        its dropout (B, T, H), which AR and TAR need. With ``decode=False`` the first item is the dropped output
        (B, T, H) itself, for :func:`embdrop.recipes.losses.linear_cross_entropy`. ``masks`` (from
        :meth:`sample_masks`) are applied in training mode where given; the other layers draw their own."""
        m = masks or LmMasks()
        x = self.input_dropout(self.embedding(ids), mask=m.input)  # (B, T, E)
        new_state = []
        for i, rnn in enumerate(self.rnns):
            x, s = rnn(x, None if state is None else state[i], masks=m.rnns[i] if m.rnns else None)  # (B, T, H_i)
            new_state.append(s)
        dropped = self.output_dropout(x, mask=m.output)
        return self.decoder(dropped) if decode else dropped, new_state, x, dropped


def _detach(state: list) -> list:
    return [tuple(t.detach() for t in s) for s in state]


class LanguageModelling(Task):
    """The stream task: batchified splits, windows of ``bptt`` steps, perplexity. The hidden state is carried."""

    metric = "perplexity"
    higher_is_better = False

    def __init__(self, config: Config) -> None:
        d = config.data
        ds = load_dataset(d.name, d.root)
        if ds.task != "language-model":
            raise _checks.invalid("data.name", "a language-modelling corpus (ptb, wikitext2)", repr(d.name))
        self.vocab = Vocab.build([ds["train"]], eos=True, max_size=d.max_tokens or None)
        t = config.train
        self.bptt, self.variable = d.bptt, d.variable_bptt
        self.mc_masks = _checks.choice("data.mc_masks", d.mc_masks, MC_MASKS)
        self.base_lr = t.lr
        self.streams = {
            s: batchify(torch.tensor(self.vocab.encode(ds[s]), dtype=torch.long), t.batch_size if s == "train"
                        else d.eval_batch_size) for s in ("train", "valid", "test")
        }  # fmt: skip
        self.state = None
        self.optimizer = None
        self.epoch_lrs: list[float] = []

    def save(self, run) -> None:
        self.vocab.save(run / "vocab.json")

    def to(self, device: torch.device) -> None:
        """Move the batchified streams to ``device`` (``train.device``)."""
        self.streams = {k: v.to(device) for k, v in self.streams.items()}

    def start_epoch(self, optimizer) -> None:
        self.state = None
        self.optimizer = optimizer
        self.epoch_lrs = [g["lr"] for g in optimizer.param_groups]

    def batches(self, split: str, batch_size: int, generator: torch.Generator | None = None):
        yield from bptt_batches(self.streams[split], self.bptt, variable=self.variable, generator=generator)

    def num_batches(self, split: str, batch_size: int) -> int:
        return num_bptt_batches(self.streams[split], self.bptt)

    def train_metric(self, mean_loss: float, mean_metric: float) -> float:
        return math.exp(min(mean_loss, 50.0))  # the perplexity of the mean loss

    def loss(self, model: LstmLm, batch) -> tuple[Tensor, dict]:
        x, y = batch
        if self.variable and self.optimizer is not None:  # AWD-LSTM: a longer window takes a larger step
            for group, lr in zip(self.optimizer.param_groups, self.epoch_lrs, strict=True):
                group["lr"] = lr * x.shape[1] / self.bptt
        _, state, raw, dropped = model(x, self.state, decode=False)
        self.state = _detach(state)
        m = getattr(model, "module", model)  # under DDP the wrapper holds the model
        # The softmax and the loss in one step (the same value and gradients as decoder + cross_entropy)
        loss = linear_cross_entropy(dropped.reshape(-1, dropped.shape[-1]), m.decoder.weight, m.decoder.bias,
                                    y.reshape(-1))  # fmt: skip
        total = loss
        if m.ar > 0:
            total = total + m.ar * dropped.pow(2).mean()
        if m.tar > 0 and raw.shape[1] > 1:  # a window of one step (a stream's last) has no step-to-step change
            total = total + m.tar * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
        return total, {"perplexity": math.exp(min(loss.item(), 50.0))}

    @torch.no_grad()
    def evaluate(self, model: LstmLm, split: str, batch_size: int = 0, mc: int = 0) -> dict:
        """Perplexity over the whole split; with ``mc`` > 0 the word probabilities are averaged over ``mc``
        dropout samples, each with its own masks and its own carried state, as rows of one batch.

        ``data.mc_masks="stream"`` (Gal & Ghahramani's test): each sample's masks are drawn once and kept for the
        whole split, so a sample is one network, and embedding dropout is off. ``"window"``: every dropout layer
        draws new masks for each window of ``bptt`` steps. A layer that draws a new mask every step (naive
        dropout) does so in both, and an LSTM with weight drop draws its masks every window in both (see
        :meth:`LstmLm.sample_masks`)."""
        from embdrop.layers import mc_dropout

        model.eval()
        nll, n, state, masks = 0.0, 0, None, None
        stream = self.streams[split]
        B = stream.shape[0]
        ctx = mc_dropout(model) if mc > 0 else torch.no_grad()
        with ctx:
            if mc > 0 and self.mc_masks == "stream":
                model.embedding.training = False  # restored with every flag when mc_dropout exits
                masks = model.sample_masks(mc * B)
            for x, y in bptt_batches(stream, self.bptt):
                if mc > 0:  # (mc*B, t): sample k is rows k*B .. k*B+B-1, each row its own masks
                    logits, state, _, _ = model(x.repeat(mc, 1), state, masks=masks)
                    logp = torch.log_softmax(logits, -1).view(mc, B, x.shape[1], -1)
                    logp = torch.logsumexp(logp, 0) - math.log(mc)  # log of the mean probability
                    nll -= logp.gather(-1, y.unsqueeze(-1)).sum().item()
                else:
                    logits, state, _, _ = model(x, state)
                    nll += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
                n += y.numel()
        loss = nll / n
        key = "mc_" if mc > 0 else ""
        return {f"{key}loss": loss, f"{key}perplexity": math.exp(loss)}


def task(config: Config) -> LanguageModelling:
    return LanguageModelling(config)


def build(config: Config, data: LanguageModelling) -> nn.Module:
    return LstmLm(len(data.vocab), config.model)
