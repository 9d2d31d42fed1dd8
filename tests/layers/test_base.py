"""The mask API every random layer shares (:class:`embdrop.layers.base.StochasticModule`)."""

import pytest

import embdrop.layers
from embdrop.layers.base import StochasticModule, mask_line

RANDOM = sorted(
    (obj for obj in vars(embdrop.layers).values()
     if isinstance(obj, type) and issubclass(obj, StochasticModule) and obj is not StochasticModule),
    key=lambda c: c.__name__,
)  # fmt: skip


def test_the_random_layers_are_found():
    names = {c.__name__ for c in RANDOM}
    assert {"Dropout", "SpatialDropout1D", "WordDropout", "Embedding", "LSTM", "GRU", "DropConnect"} <= names


@pytest.mark.parametrize("cls", RANDOM, ids=lambda c: c.__name__)
def test_every_random_layer_declares_its_masks(cls):
    # its Mask: line as an attribute (the pictures' captions read it), and its own sample_masks
    assert cls.mask_text.startswith("Mask: ") and cls.mask_text == mask_line(cls.__doc__)
    assert cls.sample_masks is not StochasticModule.sample_masks


def test_a_layer_without_sample_masks_says_so():
    class Half(StochasticModule):
        """Random, but without its masks.

        Mask: (B,), redrawn every call.
        """

    assert Half.mask_text == "Mask: (B,), redrawn every call."
    with pytest.raises(NotImplementedError, match="Half does not define sample_masks"):
        Half().sample_masks(None)
    assert mask_line("No mask here.") == ""
