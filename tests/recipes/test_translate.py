import pytest
import torch
from tests.recipes.test_train import quiet
from tests.shared import shared

from embdrop import recipes
from embdrop.recipes import translate_fr_en as tr


@pytest.mark.slow
def test_translation_learns_and_reports_bleu(tmp_path, capsys):
    root = shared("tatoeba-fra-eng")
    items = [f"data.root={root}", "data.train_pairs=4000", "data.eval_pairs=200", "data.maxlen=5", "train.epochs=3",
             "model.hidden=96", "model.embedding_dim=48", "model.cell=lstm"]  # fmt: skip
    s = recipes.train("translate-fr-en", items, tmp_path / "run", console=quiet())
    assert s.test["bleu"] > 1.0 and s.test["loss"] < 4.5  # well above an untrained model's 0 BLEU
    shown = [line for line in capsys.readouterr().err.splitlines() if " => " in line]  # with the loop's lines
    assert len(shown) == 6 and all("(reference: " in line for line in shown)
    assert (tmp_path / "run" / "source_vocab.json").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (train.device=cuda)")
def test_translation_trains_and_decodes_on_a_gpu(tmp_path):
    items = [f"data.root={shared('tatoeba-fra-eng')}", "data.train_pairs=4000", "data.eval_pairs=200", "data.maxlen=5",
             "train.epochs=3", "model.hidden=96", "model.embedding_dim=48", "train.device=cuda"]  # fmt: skip
    s = recipes.train("translate-fr-en", items, tmp_path / "run", console=quiet())
    assert s.test["bleu"] > 1.0


def test_greedy_stops_at_eos_and_strips_it():
    import torch

    m = tr.Seq2Seq(10, 7, tr.Seq2SeqModel(hidden=8, embedding_dim=4, max_output=5))
    with torch.no_grad():
        m.out.weight.zero_()
        m.out.bias.copy_(torch.tensor([0.0, 0, 5, 0, 0, 0, 0]))  # always predicts id 2 (<eos>)
    assert m.greedy(torch.tensor([[3, 4, 0]]), start=2, end=2) == [[]]
