"""Task generators appended to course_lib.data: NeighboursTask (notebook 04)."""

import pytest
import torch

from course_lib.data import NeighboursBatch, NeighboursTask, Vocab


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_neighbours_batch_matches_a_loop():
    task = NeighboursTask(num_symbols=5, length=7)
    batch = task.batch(16, gen(0))
    assert isinstance(batch, NeighboursBatch)
    assert batch.tokens.shape == batch.before.shape == batch.after.shape == (16, 7)
    assert batch.targets.shape == (16, 7, 2)
    pad = task.vocab.pad_id
    for row in range(16):
        x = batch.tokens[row].tolist()
        for i in range(7):
            assert batch.before[row, i] == (x[i - 1] if i > 0 else pad)
            assert batch.after[row, i] == (x[i + 1] if i < 6 else pad)
    assert torch.equal(batch.targets[..., 0], batch.before) and torch.equal(batch.targets[..., 1], batch.after)


def test_neighbours_symbols_are_real_symbols_and_uniform():
    task = NeighboursTask(num_symbols=4, length=50)
    tokens = task.batch(200, gen(1)).tokens
    first = len(Vocab.SPECIALS)
    assert tokens.min() >= first and tokens.max() < first + 4
    counts = torch.bincount(tokens.flatten() - first, minlength=4).float() / tokens.numel()
    assert torch.all((counts - 0.25).abs() < 0.02)


def test_neighbours_is_reproducible():
    task = NeighboursTask()
    a, b = task.batch(8, gen(3)), task.batch(8, gen(3))
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.tokens, task.batch(8, gen(4)).tokens)


def test_neighbours_targets_for_and_encode_agree():
    task = NeighboursTask(num_symbols=10, length=4)
    before, after = task.targets_for("3141")
    assert before == ["<pad>", "3", "1", "4"] and after == ["1", "4", "1", "<pad>"]
    batch = task.encode(["3141", "2718"])
    assert task.vocab.decode(batch.before[0], strip_special=False, join=False) == before
    assert task.vocab.decode(batch.after[0], strip_special=False, join=False) == after
    assert task.vocab.decode(batch.tokens[1]) == "2718"


def test_neighbours_to_device_copies():
    batch = NeighboursTask().batch(2, gen(0))
    moved = batch.to("cpu")
    assert torch.equal(moved.targets, batch.targets)


@pytest.mark.parametrize(
    "call,exc,words",
    [
        (lambda: NeighboursTask(num_symbols=63), ValueError, "num_symbols must be <= 62"),
        (lambda: NeighboursTask(length=1), ValueError, "length must be an int >= 2"),
        (lambda: NeighboursTask(length=4.0), TypeError, "length must be an int"),
        (lambda: NeighboursTask().batch(0), ValueError, "batch_size must be an int >= 1"),
        (lambda: NeighboursTask().batch(2, generator=0), TypeError, "generator must be a torch.Generator"),
        (lambda: NeighboursTask().encode(["12", "123"]), ValueError, "same length"),
        (lambda: NeighboursTask().encode("123"), ValueError, "non-empty list"),
        (lambda: NeighboursTask(num_symbols=3).targets_for("39"), ValueError, "not in the vocabulary"),
    ],
)
def test_neighbours_errors(call, exc, words):
    with pytest.raises(exc, match=words):
        call()
