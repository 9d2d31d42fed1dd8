"""The names of the variants the pictures show, without importing torch: the command line's help lists them."""

# embdrop show: what each dropout variant does to one (B, T, C) input, as text
SHOW_VARIANTS = ("dropout", "spatial", "token", "embedding")
# embdrop masks: the layers' masks, then an LSTM's unrolled
LAYER_VARIANTS = ("dropout", "spatial", "token", "word", "embedding-sample", "embedding-batch", "dropconnect")
RECURRENT_VARIANTS = ("naive", "variational", "weight-drop")
MASK_VARIANTS = LAYER_VARIANTS + RECURRENT_VARIANTS
FORMATS = ("png", "svg")
