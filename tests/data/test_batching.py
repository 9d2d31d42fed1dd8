import pytest
import torch

from embdrop.data import batchify, bptt_batches, bucket_batches, num_bptt_batches, pad_sequences

SEQS = [[1, 2, 3, 4], [5], [], [6, 7]]


def test_pad_sequences_keras_defaults_pre_pad_pre_truncate():
    assert pad_sequences(SEQS).tolist() == [[1, 2, 3, 4], [0, 0, 0, 5], [0, 0, 0, 0], [0, 0, 6, 7]]
    assert pad_sequences(SEQS, maxlen=3).tolist() == [[2, 3, 4], [0, 0, 5], [0, 0, 0], [0, 6, 7]]


@pytest.mark.parametrize(
    "padding, truncating, want",
    [
        ("post", "pre", [[2, 3, 4], [5, 9, 9], [9, 9, 9], [6, 7, 9]]),
        ("pre", "post", [[1, 2, 3], [9, 9, 5], [9, 9, 9], [9, 6, 7]]),
        ("post", "post", [[1, 2, 3], [5, 9, 9], [9, 9, 9], [6, 7, 9]]),
    ],
)
def test_pad_sequences_sides(padding, truncating, want):
    got = pad_sequences(SEQS, 3, padding=padding, truncating=truncating, value=9)
    assert got.dtype == torch.int64 and got.tolist() == want


def test_pad_sequences_takes_tensors_and_errors():
    assert pad_sequences([torch.tensor([3, 4]), torch.tensor([5])]).tolist() == [[3, 4], [0, 5]]
    with pytest.raises(ValueError, match="argument 'padding': expected one of 'pre', 'post'. Received: padding='left'"):
        pad_sequences(SEQS, padding="left")
    with pytest.raises(ValueError, match="argument 'maxlen'"):
        pad_sequences(SEQS, maxlen=0)
    with pytest.raises(ValueError, match=r"argument 'sequences\[0\]': expected a 1-D sequence of ints"):
        pad_sequences([torch.ones(2)])


def test_bucket_batches_cover_everything_once_with_close_lengths():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 500, (1000,), generator=g)
    batches = bucket_batches(lengths, 32, bucket_batches=10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.sort(torch.cat(batches)).values, torch.arange(1000))
    assert sum(len(b) < 32 for b in batches) <= 4  # one short batch per bucket at most
    spread = torch.tensor([(lengths[b].max() - lengths[b].min()).item() for b in batches]).float()
    assert spread.median() < 100  # a tenth of the range per batch (~50) vs ~470 for random batches
    again = bucket_batches(lengths, 32, bucket_batches=10, generator=torch.Generator().manual_seed(1))
    other = bucket_batches(lengths, 32, bucket_batches=10, generator=torch.Generator().manual_seed(2))
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=False))
    assert not all(torch.equal(a, b) for a, b in zip(batches, other, strict=False))


def test_bucket_batches_sorted_for_evaluation():
    got = bucket_batches([5, 1, 4, 2, 1], 2, shuffle=False)
    assert [b.tolist() for b in got] == [[1, 4], [3, 2], [0]]


def test_batchify_rows_are_contiguous_streams():
    s = batchify(torch.arange(23), 4)
    assert s.shape == (4, 5)
    assert s[1].tolist() == [5, 6, 7, 8, 9]
    with pytest.raises(ValueError, match="argument 'batch_size': expected at most 11"):
        batchify(torch.arange(23), 20)


def test_bptt_windows_rebuild_the_stream_and_targets_shift_by_one():
    stream = batchify(torch.arange(1000), 5)  # (5, 200)
    windows = list(bptt_batches(stream, 35))
    assert len(windows) == num_bptt_batches(stream, 35) == 6
    assert torch.equal(torch.cat([x for x, _ in windows], 1), stream[:, :-1])
    assert torch.equal(torch.cat([y for _, y in windows], 1), stream[:, 1:])
    assert all(x.shape[1] == 35 for x, _ in windows[:-1])


def test_bptt_variable_lengths_follow_awd_lstm():
    stream = batchify(torch.arange(200_000), 10)
    lens = [x.shape[1] for x, _ in bptt_batches(stream, 70, variable=True, generator=torch.Generator().manual_seed(0))]
    assert min(lens[:-1]) >= 5 and max(lens) <= 110
    t = torch.tensor(lens[:-1]).float()
    # mean 0.95 * 70 + 0.05 * 35 = 68.25, std of a window about 9.3 (mixture): 4-sigma bound on the mean
    assert abs(t.mean().item() - 68.25) < 4 * 9.3 / len(t) ** 0.5
    again = [x.shape[1] for x, _ in bptt_batches(stream, 70, variable=True, generator=torch.Generator().manual_seed(0))]
    assert again == lens
    x, y = next(bptt_batches(stream, 70, variable=True, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(y, x + 1)


def test_pad_flat_equals_pad_sequences_on_random_sequences():
    import itertools
    import random

    from embdrop.data.batching import pad_flat

    rng = random.Random(0)
    for _ in range(100):
        seqs = [[rng.randint(1, 50) for _ in range(rng.randint(0, 9))] for _ in range(rng.randint(1, 20))]
        flat = torch.tensor([x for s in seqs for x in s], dtype=torch.long)
        offsets = torch.tensor([0, *itertools.accumulate(len(s) for s in seqs)])
        for padding, truncating in itertools.product(("pre", "post"), ("pre", "post")):
            maxlen = rng.randint(1, 10)
            expected = pad_sequences(seqs, maxlen, padding=padding, truncating=truncating)
            assert torch.equal(pad_flat(flat, offsets, maxlen, padding=padding, truncating=truncating), expected)
