"""``translate-fr-en``: a small encoder-decoder from French to English on the Tatoeba pairs
(``--set data.root=DIR``, the folder with ``fra.txt``), with an embedding and embedding dropout on both sides.

Encoder: Embedding(V_fr, E, embedding dropout) -> LSTM or GRU (``dropout`` on its inputs, ``recurrent_dropout`` on
its state) over the real steps only (``lengths``). Decoder: Embedding(V_en, E, embedding dropout) -> the same kind of
recurrent layer started from the encoder's final state -> Dropout -> Dense(V_en), trained with teacher forcing.
Greedy decoding; BLEU (sacrebleu, on lower-cased text tokenized as the model sees it) on held-out pairs whose
English sentence never occurs in training, and a few translations printed at the end.

Pairs with more than ``data.maxlen`` words on either side are left out; ``data.train_pairs`` caps the training
pairs (a seeded sample) so an epoch fits a CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from embdrop import GRU, LSTM, Dropout, Embedding, _checks, _extras
from embdrop.data import Tokenizer, Vocab, load_dataset, pad_sequences
from embdrop.recipes.config import Config
from embdrop.recipes.presets import Seq2SeqModel, TranslationData  # noqa: F401 (re-exported)
from embdrop.recipes.task import Task, say


class Seq2Seq(nn.Module):
    def __init__(self, src_vocab: int, tgt_vocab: int, m: Seq2SeqModel) -> None:
        super().__init__()
        rnn = {"lstm": LSTM, "gru": GRU}[_checks.choice("model.cell", m.cell, ("lstm", "gru"))]
        kw = {"dropout": m.dropout, "recurrent_dropout": m.recurrent_dropout}
        self.src_embedding = Embedding(src_vocab, m.embedding_dim, padding_idx=0, dropout=m.embedding_dropout)
        self.tgt_embedding = Embedding(tgt_vocab, m.embedding_dim, padding_idx=0, dropout=m.embedding_dropout)
        self.encoder = rnn(m.embedding_dim, m.hidden, **kw)
        self.decoder = rnn(m.embedding_dim, m.hidden, **kw)
        self.output_dropout = Dropout(m.dropout)
        self.out = nn.Linear(m.hidden, tgt_vocab)
        self.max_output = m.max_output

    def encode(self, src: Tensor):
        _, state = self.encoder(self.src_embedding(src), lengths=src != 0)  # post-padded (B, S)
        return state

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        """src (B, S), tgt_in (B, T) (``<eos>`` then the target shifted right) -> logits (B, T, V_en)."""
        y, _ = self.decoder(self.tgt_embedding(tgt_in), self.encode(src))  # (B, T, H)
        return self.out(self.output_dropout(y))

    @torch.no_grad()
    def greedy(self, src: Tensor, start: int, end: int) -> list[list[int]]:
        state = self.encode(src)
        token = torch.full((src.shape[0], 1), start, dtype=torch.long, device=src.device)
        out, done = [], torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        for _ in range(self.max_output):
            y, state = self.decoder(self.tgt_embedding(token), state)
            token = self.out(y).argmax(-1)  # (B, 1)
            out.append(token[:, 0])
            done |= token[:, 0] == end
            if done.all():
                break
        rows = torch.stack(out, 1).tolist()
        return [row[: row.index(end)] if end in row else row for row in rows]


class Translation(Task):
    metric = "bleu"
    higher_is_better = True

    def __init__(self, config: Config) -> None:
        d = config.data
        ds = load_dataset(d.name, d.root)
        if ds.task != "translation":
            raise _checks.invalid("data.name", "a translation dataset (tatoeba-fra-eng)", repr(d.name))
        self.tok = Tokenizer(punctuation=d.punctuation)
        g = torch.Generator().manual_seed(0)

        def pick(split: str, cap: int) -> list[tuple[list[str], list[str]]]:
            pairs = [(self.tok(fr), self.tok(en)) for en, fr in ds[split]]
            pairs = [p for p in pairs if 0 < len(p[0]) <= d.maxlen and 0 < len(p[1]) <= d.maxlen]
            order = torch.randperm(len(pairs), generator=g).tolist()
            return [pairs[i] for i in (order[:cap] if cap else order)]

        self.pairs = {"train": pick("train", d.train_pairs), "valid": pick("valid", d.eval_pairs),
                      "test": pick("test", d.eval_pairs)}  # fmt: skip
        size = d.max_tokens or None
        self.src_vocab = Vocab.build([s for s, _ in self.pairs["train"]], max_size=size)
        self.vocab = Vocab.build([t for _, t in self.pairs["train"]], max_size=size, eos=True)
        self.eos = self.vocab["<eos>"]
        self.maxlen = d.maxlen
        self.splits = {k: self._tensors(v) for k, v in self.pairs.items()}
        self.shown: list[str] = []

    def _tensors(self, pairs):
        src = pad_sequences([self.src_vocab.encode(s) for s, _ in pairs], self.maxlen, padding="post")
        tgt = [self.vocab.encode(t) for _, t in pairs]
        tgt_in = pad_sequences([[self.eos, *t] for t in tgt], self.maxlen + 1, padding="post")
        tgt_out = pad_sequences([[*t, self.eos] for t in tgt], self.maxlen + 1, padding="post")
        return src, tgt_in, tgt_out

    def save(self, run) -> None:
        self.vocab.save(run / "vocab.json")
        self.src_vocab.save(run / "source_vocab.json")

    def train_metric(self, mean_loss: float, mean_metric: float) -> float:
        return float("nan")  # BLEU needs decoding: validation and test only

    @staticmethod
    def loss(model: Seq2Seq, batch) -> tuple[Tensor, dict]:
        src, tgt_in, tgt_out = batch
        logits = model(src, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), ignore_index=0)
        return loss, {"bleu": 0.0}

    @torch.no_grad()
    def evaluate(self, model: Seq2Seq, split: str, batch_size: int = 500, mc: int = 0) -> dict:
        _extras.need("sacrebleu")
        import sacrebleu

        model.eval()
        nll = n = 0.0
        hyps: list[str] = []
        for src, tgt_in, tgt_out in self.batches(split, batch_size):
            logits = model(src, tgt_in)
            nll += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), ignore_index=0,
                                   reduction="sum").item()  # fmt: skip
            n += (tgt_out != 0).sum().item()
            hyps += [" ".join(self.vocab.decode(h)) for h in model.greedy(src, self.eos, self.eos)]
        refs = [" ".join(t) for _, t in self.pairs[split]]
        bleu = sacrebleu.corpus_bleu(hyps, [refs], tokenize="none", force=True).score
        if split == "test":
            self.shown = [f"{' '.join(s)} => {h}   (reference: {r})" for (s, _), h, r in
                          zip(self.pairs[split][:6], hyps[:6], refs[:6], strict=True)]  # fmt: skip
            for line in self.shown:
                say(line)
        return {"loss": nll / max(n, 1), "bleu": bleu}


def task(config: Config) -> Translation:
    return Translation(config)


def build(config: Config, data: Translation) -> nn.Module:
    return Seq2Seq(len(data.src_vocab), len(data.vocab), config.model)
