"""The ``embdrop`` command's argument parser: one function per group of sub-commands. Torch-free, so that
``embdrop --help`` answers at once."""

from __future__ import annotations

import argparse

from embdrop.viz import names as viz_names


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, metavar="FILE",
                   help="your data: for text-* recipes a CSV/TSV (columns text, label), JSONL, 'label<TAB>text' "
                   "lines or a folder with one sub-folder per class; for tabular-entity a CSV table "
                   "(data.train)")  # fmt: skip
    p.add_argument("--valid", default=None, metavar="FILE", help="your validation file (default: 10%% of --data)")
    p.add_argument("--test", default=None, metavar="FILE", help="your test file (default: another 10%% of --data)")


def build_parser() -> argparse.ArgumentParser:
    from embdrop import __version__

    parser = _Parser(prog="embdrop", description="Embedding layers and the dropout family that regularizes them.")
    parser.add_argument("--version", action="version", version=f"embdrop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_pictures(sub)
    _add_training(sub)
    _add_shipping(sub)
    _add_reading(sub)
    return parser


def _add_pictures(sub) -> None:
    """The sub-commands that show what each dropout drops: show, masks."""
    s = sub.add_parser(
        "show",
        help="show what Dropout, SpatialDropout1D, TokenDropout and embedding dropout drop",
        description="Print x = arange(1, B*T*C+1).reshape(B, T, C) and, side by side, what each dropout variant "
        "does to it, marking the dropped entries.",
    )
    s.add_argument(
        "--variant",
        action="append",
        choices=["all", *viz_names.SHOW_VARIANTS],
        help="variant to show (repeatable; default: all)",
    )
    s.add_argument("--p", type=float, default=0.5, help="probability to drop (default 0.5)")
    s.add_argument("--shape", default="3,3,4", help="B,T,C of the input (default 3,3,4)")
    s.add_argument("--seed", type=int, default=0, help="seed of the generator each variant uses (default 0)")
    s.add_argument("--mode", default="sample", help="embedding dropout mode: sample or batch (default sample)")

    m = sub.add_parser(
        "masks",
        help="draw the masks each dropout variant samples (PNG and SVG)",
        description="Draw the keep-masks the layers really sample: masks-layers (Dropout, SpatialDropout1D, "
        "TokenDropout, WordDropout, embedding dropout per sample and per batch, DropConnect; one grid per sample "
        "as x[b] prints: a row per time step, a column per channel) and masks-recurrent (an LSTM unrolled: "
        "naive, variational, weight drop).",
    )
    m.add_argument("--variant", action="append", metavar="NAME",
                   help="variant to draw (repeatable; default: all): "
                   + ", ".join(viz_names.MASK_VARIANTS))  # fmt: skip
    m.add_argument("--p", type=float, default=viz_names.DEFAULT_P, help="probability to drop (default %(default)s)")
    m.add_argument("--shape", default=",".join(map(str, viz_names.DEFAULT_SHAPE)),
                   help="B,T,C of the input (default %(default)s)")  # fmt: skip
    m.add_argument("--seed", type=int, default=viz_names.DEFAULT_SEED,
                   help="seed: variant k draws from seed + k (default %(default)s)")  # fmt: skip
    m.add_argument("--out", default="masks", help="directory for the pictures (default ./masks)")
    m.add_argument("--format", action="append", choices=viz_names.FORMATS, help="png, svg (default: both)")


def _add_training(sub) -> None:
    """The sub-commands that train and compare."""
    t = sub.add_parser(
        "train",
        help="train a recipe on real data (default: reviews-cnn-lstm on the packaged reviews)",
        description="Train a recipe, writing config.json, vocab.json, metrics.jsonl, curve.png and safetensors "
        "checkpoints to the run directory. A '*' at the end of an epoch's line marks the best validation metric so "
        "far (a tie goes to the lower validation loss): the test metrics are computed with the weights of the last "
        "epoch so marked.",
    )
    t.add_argument(
        "recipe", nargs="?", default=None, help="recipe name (see 'embdrop recipes'; default reviews-cnn-lstm)"
    )
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. --set model.dropout=0.3 (repeatable)")  # fmt: skip
    t.add_argument("--out", default=None, help="run directory (default runs/RECIPE-TIME); must be new or empty")
    t.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR from its last epoch")
    t.add_argument("--allow-changed-data", action="store_true",
                   help="with --resume: go on although an input file changed (the summary records it)")  # fmt: skip
    _data_arguments(t)
    t.add_argument("--mc", type=int, default=None, metavar="N",
                   help="also evaluate the test split with MC dropout over N samples (sets train.mc)")  # fmt: skip
    c = sub.add_parser(
        "compare",
        help="train a grid of variants over several seeds and tabulate the test metrics",
        description="Train RECIPE for every combination of the --vary values and every seed (one process per core), "
        "then write runs.csv (raw metrics), table.md (mean, std, 95% interval) and compare.png to --out.",
    )
    c.add_argument("recipe", nargs="?", default=None, help="recipe name (see 'embdrop recipes')")
    c.add_argument("--vary", action="append", default=[], metavar="FIELD=V1,V2",
                   help="a field and the values to compare, e.g. --vary model.dropout=0,0.25 (repeatable)")  # fmt: skip
    c.add_argument("--cell", action="append", default=[], metavar="NAME:F=V;F=V",
                   help="a named cell setting several fields, e.g. 'both:model.dropout=0.25;model.lstm_dropout=0.5' "
                   "(repeatable; crossed with --vary)")  # fmt: skip
    c.add_argument("--seeds", type=int, default=None, help="seeds per cell (default 5)")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="a field set in every run (repeatable)")  # fmt: skip
    _data_arguments(c)
    c.add_argument("--out", default=None, help="output directory (default runs/compare-RECIPE-TIME); new or empty")
    c.add_argument("--jobs", type=int, default=None, help="processes (default: one per core)")
    c.add_argument("--resume", default=None, metavar="DIR",
                   help="continue a killed or interrupted compare in DIR (finished runs kept)")  # fmt: skip


def _add_shipping(sub) -> None:
    """The sub-commands that use a trained model: predict, export, convert."""
    p = sub.add_parser(
        "predict",
        help="predict texts or a file's rows with a trained run (or a converted Keras model)",
        description="Print P(class) for each TEXT with the run's best weights; with --mc N also the standard "
        "deviation over N MC-dropout passes and the mutual information (model uncertainty). With --data FILE: one "
        "prediction per row of FILE as CSV (stdout or --out): a text-classification run reads the text column "
        "(CSV/TSV/JSONL as in training, a folder, or a .txt with one text per line), a tabular-entity run the "
        "training columns; a label column, where the file has one, is put beside the predictions.",
    )
    p.add_argument("run", metavar="RUN_DIR", help="a run directory written by 'embdrop train' or 'embdrop convert'")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="text(s) to classify (or --data FILE)")
    p.add_argument("--data", default=None, metavar="FILE", help="a file (or folder) of inputs: one prediction per row")
    p.add_argument("--out", default=None, metavar="FILE", help="with --data: write the CSV here (default: stdout)")
    p.add_argument("--all-classes", action="store_true", help="with --data: a probability column per class")
    p.add_argument("--mc", type=int, default=0, metavar="N", help="MC-dropout passes (default 0: dropout off)")
    p.add_argument("--seed", type=int, default=0, help="seed of the MC-dropout masks (default 0)")
    x = sub.add_parser(
        "export",
        help="write a trained model as ONNX (or a torch.export archive) with its preprocessing as JSON",
        description="Write RUN_DIR's model (best weights, eval mode; a run of any recipe, or a folder from embdrop "
        "convert --vocab) to OUT as ONNX (default) or a torch.export archive (--format pt2), with a dynamic batch "
        "and sequence length and named inputs and outputs, and OUT.json beside it: what turns texts or table rows "
        "into the inputs (vocabulary, tokenizer settings, length, classes, columns; a language model's state, a "
        "translation's decoding). The written file is run on two input shapes against the torch model and the "
        "largest difference printed.",
    )
    x.add_argument("run", metavar="RUN_DIR", help="a run directory, or a folder from embdrop convert --vocab")
    x.add_argument("--out", required=True, metavar="FILE", help="the model file to write (e.g. model.onnx)")
    x.add_argument("--format", default="onnx", metavar="FORMAT", help="onnx (default) or pt2 (torch.export)")
    k = sub.add_parser(
        "convert",
        help="bring a Keras text model (.keras) over: identical outputs, the same dropout semantics",
        description="Read a Keras 3 .keras file (no TensorFlow or Keras needed) and write OUT_DIR: model.safetensors "
        "and keras_config.json, which embdrop.from_keras(OUT_DIR) loads. With --vocab (the TextVectorization "
        "vocabulary, one token per line), 'embdrop predict OUT_DIR TEXT' classifies texts with it.",
    )
    k.add_argument("model", metavar="MODEL", help="a Keras 3 .keras file")
    k.add_argument("out", metavar="OUT_DIR", help="a new or empty directory")
    k.add_argument("--vocab", metavar="FILE", help="the TextVectorization vocabulary ('' and '[UNK]' first)")
    k.add_argument("--maxlen", type=int, default=None, help="ids per text (default: the model's input length)")
    k.add_argument("--padding", choices=["pre", "post"], default="pre",
                   help="pre (default): zeros and cuts at the start, as pad_sequences; post: at the end, as "
                   "TextVectorization")  # fmt: skip
    k.add_argument("--outputs", metavar="NAMES", help="names of the model's outputs, comma-separated")


def _add_reading(sub) -> None:
    """The sub-commands that read runs and recipes: report, recipes, config."""
    r = sub.add_parser(
        "report",
        help="one self-contained HTML page for runs or a compare directory",
        description="Write one HTML file (images and styles inline, no network) with the config, the learning "
        "curves, the test metrics with their intervals, the pictures of the masks the models use and, for text "
        "models, the learned embedding (nearest neighbours and a PCA map).",
    )
    r.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories of 'embdrop train' or 'compare'")
    r.add_argument("--out", default="report.html", help="the HTML file to write (default report.html)")
    sub.add_parser("recipes", help="list the recipes", description="List the recipes, one line each.")
    g = sub.add_parser(
        "config",
        help="print every field of a recipe's config: type, value, default and meaning",
        description="Print every field of RECIPE's config, as --set FIELD=VALUE takes it: its type, its value (after "
        "the --set items, if any), its default where it differs, and what it means. Nothing is trained.",
    )
    g.add_argument("recipe", help="recipe name (see 'embdrop recipes')")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="show the config resolved with these overrides (repeatable)")  # fmt: skip
