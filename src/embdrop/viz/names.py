"""The names of the variants the pictures show, without importing torch: the command line's help lists them."""

# embdrop show: what each dropout variant does to one (B, T, C) input, as text
SHOW_VARIANTS = ("dropout", "spatial", "token", "embedding")
# embdrop masks: the layers' masks, then an LSTM's unrolled
LAYER_VARIANTS = ("dropout", "spatial", "token", "word", "embedding-sample", "embedding-batch", "dropconnect")
RECURRENT_VARIANTS = ("naive", "variational", "weight-drop")
MASK_VARIANTS = LAYER_VARIANTS + RECURRENT_VARIANTS
FORMATS = ("png", "svg")
# The default picture: a shape and seed where every panel teaches (each grid keeps some cells and drops some, a
# repeated word is dropped at every occurrence while another is kept; tests/viz/test_masks.py holds it).
DEFAULT_SHAPE, DEFAULT_P, DEFAULT_SEED = (2, 8, 8), 0.5, 0
