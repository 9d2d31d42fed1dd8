"""``embdrop predict RUN_DIR "text"``: the class probabilities from a trained text-classification run.

With ``mc`` > 0 the dropout layers stay on and the probability is averaged over ``mc`` passes (MC dropout, Gal &
Ghahramani 2016); the standard deviation over the passes and the mutual information between the prediction and
the weights (BALD: predictive entropy minus the mean entropy of the passes, in nats) say how unsure the model is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from embdrop import _checks, _extras
from embdrop._io import read_json
from embdrop.data import Vocab, pad_sequences
from embdrop.layers import mc_predict
from embdrop.recipes import memory, text_classification
from embdrop.recipes.text_classification import TextClassification, TextInputs, _Probability, outputs, tokenizer


@dataclass
class Prediction:
    """One text's prediction. Two classes: ``probability`` is P(classes[1]); more: P(``label``), the likeliest
    class, with every class's probability in ``probabilities``."""

    text: str
    probability: float
    classes: tuple[str, ...]
    std: float | None = None  # MC: the standard deviation of ``probability`` over the passes
    mutual_information: float | None = None
    probabilities: tuple[float, ...] = ()

    @property
    def label(self) -> str:
        if len(self.classes) == 2:
            return self.classes[int(self.probability > 0.5)]
        return self.classes[max(range(len(self.probabilities)), key=self.probabilities.__getitem__)]

    def __str__(self) -> str:
        shown = self.classes[1] if len(self.classes) == 2 else self.label
        s = f"P({shown}) = {self.probability:.4f} -> {self.label}"
        if self.std is not None:
            s += f"  (MC std {self.std:.4f}, mutual information {self.mutual_information:.4f} nats)"
        return s


def load_model(run: str | Path):
    """(config, vocab, classes, model in eval mode with the best weights) of a text-classification run."""
    _extras.need("safetensors")
    from safetensors.torch import load_file

    from embdrop import recipes

    run = Path(run)
    config = recipes.load_config(run, "RUN_DIR")
    r = recipes.recipe(config.recipe)
    if r.task is not text_classification.task:
        text = ", ".join(n for n, m in recipes.RECIPES.items() if m.task is text_classification.task)
        raise _checks.invalid("RUN_DIR", f"a run of a text-classification recipe ({text})",
                              f"{str(run)!r} (recipe {config.recipe})")  # fmt: skip
    try:
        vocab = Vocab.load(run / "vocab.json")
        weights = load_file(run / "best.safetensors")
    except Exception as e:
        raise _checks.invalid("RUN_DIR", "a run directory with vocab.json and best.safetensors",
                              f"{str(run)!r} ({type(e).__name__}: {e})") from None  # fmt: skip
    classes: tuple = ("0", "1")  # a run written before classes.json: two classes (checked against the weights below)
    if (run / "classes.json").exists():
        names = read_json(run / "classes.json", "a JSON list of the class names", argument="RUN_DIR")
        if not (isinstance(names, list) and len(names) >= 2 and all(isinstance(c, str) for c in names)):
            raise _checks.invalid("RUN_DIR", "a classes.json holding a JSON list of at least two class names",
                                  f"{str(run / 'classes.json')!r} ({str(names)[:80]})")  # fmt: skip
        classes = tuple(names)
    elif (run / "inputs.json").exists():  # a run of this version always writes classes.json
        raise _checks.invalid("RUN_DIR", "a run directory with its classes.json", f"{str(run)!r} (missing)")
    if config.embedding is not None and config.embedding.pretrained is not None:
        config.embedding.pretrained = None  # the trained weights replace the vectors: no need to read them again
        if "embedding.weight" in weights and weights["embedding.weight"].dim() == 2:
            config.model.embedding_dim = weights["embedding.weight"].shape[1]
    inputs = TextInputs(vocab, outputs(len(classes)))
    _check_weights(run, lambda: r.build(config, inputs), weights)  # before the model is allocated
    model = r.build(config, inputs)
    model.load_state_dict(weights)
    model.eval()
    return config, vocab, classes, model


def _check_weights(run: Path, build, weights: dict) -> None:
    """The weights file holds exactly the tensors, of exactly the shapes, of the model config.json describes
    (built on the meta device: nothing allocated)."""
    with torch.device("meta"):
        skeleton = build()
    want = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in weights.items()}
    if want == got:
        return
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    wrong = [k for k in want if k in got and want[k] != got[k]]
    what = (f"{wrong[0]}: {got[wrong[0]]} in best.safetensors, {want[wrong[0]]} from config.json, vocab.json and "
            "classes.json" if wrong else f"missing {missing[:3]}, unexpected {extra[:3]}")  # fmt: skip
    raise _checks.invalid("RUN_DIR", "a best.safetensors of the model its config.json, vocab.json and classes.json "
                          "describe (not another run's, not an edited config)", f"{str(run)!r} ({what})")  # fmt: skip


def predict(run: str | Path, texts: list[str], *, mc: int = 0, seed: int = 0) -> list[Prediction]:
    """Predictions for ``texts`` with the run's best weights; ``mc`` > 0 for MC dropout over that many passes."""
    mc = _checks.mc_samples("--mc", mc)
    seed = _checks.seed("--seed", seed)
    config, vocab, classes, model = load_model(run)
    d = config.data
    memory.check_bytes(len(texts) * int(d.maxlen) * 8, "RUN_DIR", f"{str(run)!r} (data.maxlen={d.maxlen})",
                       "padded ids (texts x data.maxlen x 8 bytes)")  # fmt: skip
    encoded = tokenizer(d).encode(texts, vocab)
    for text, seq in zip(texts, encoded, strict=True):
        if len(seq) == 0:
            raise _checks.invalid("TEXT", "a text with at least one word", repr(text[:60]))
    ids = pad_sequences(encoded, d.maxlen, padding=d.padding, truncating="pre")
    binary = len(classes) == 2
    if mc == 0:
        with torch.no_grad():
            p = _Probability(model)(ids)  # (N,) or (N, K)
        if binary:
            return [Prediction(t, float(q), classes) for t, q in zip(texts, p, strict=True)]
        return [Prediction(t, float(q.max()), classes, probabilities=tuple(q.tolist()))
                for t, q in zip(texts, p, strict=True)]  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    r = mc_predict(_Probability(model), ids, samples=mc, probs="binary" if binary else "categorical", generator=g)
    if binary:
        return [
            Prediction(t, float(m), classes, float(s), float(mi))
            for t, m, s, mi in zip(texts, r.mean, r.std, r.mutual_information, strict=True)
        ]
    out = []
    for t, m, s, mi in zip(texts, r.mean, r.std, r.mutual_information, strict=True):
        k = int(m.argmax())
        out.append(Prediction(t, float(m[k]), classes, float(s[k]), float(mi), tuple(m.tolist())))
    return out


__all__ = ["Prediction", "TextClassification", "load_model", "predict"]
