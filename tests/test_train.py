"""course_lib.train: seeding, device choice, the training loop, evaluation helpers."""

import os

import pytest
import torch
from torch import nn

from course_lib import train


def test_seed_everything_makes_runs_repeatable():
    train.seed_everything(3)
    a = torch.randn(5)
    g = train.seed_everything(3)
    b = torch.randn(5)
    torch.testing.assert_close(a, b)
    assert torch.equal(torch.randn(3, generator=g), torch.randn(3, generator=torch.Generator().manual_seed(3)))
    with pytest.raises(TypeError, match="seed must be an int, got float"):
        train.seed_everything(1.5)


def test_device_defaults_and_forcing(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    assert train.device().type in ("cpu", "cuda", "mps")
    assert train.device("cpu") == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert train.device() == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be one of"):
        train.device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda.*is_available"):
            train.device("cuda")


def test_train_loop_fits_a_linear_map_and_records_history():
    train.seed_everything(0)
    w_true = torch.randn(4, 1)
    model = nn.Linear(4, 1)

    def batch(step):
        x = torch.randn(32, 4)
        return x, x @ w_true

    def loss_fn(m, b):
        return nn.functional.mse_loss(m(b[0]), b[1])

    def eval_fn(m):
        return {"weight_error": (m.weight.T - w_true).abs().max()}

    hist = train.train_loop(model, batch, loss_fn, steps=300, lr=0.05, eval_fn=eval_fn, eval_every=100,
                            progress=False)
    assert len(hist.loss) == 300 and hist.steps[-1] == 299
    assert hist.final_loss < 1e-3 < hist.loss[0]
    assert [s for s, _ in hist.evals["weight_error"]] == [100, 200, 300]
    assert hist.evals["weight_error"][-1][1] < 0.05
    assert hist.seconds > 0
    assert len(hist.smoothed(10)) == 300
    assert not model.training


def test_train_loop_accepts_an_iterator_and_stops_on_nan():
    model = nn.Linear(2, 1)
    batches = iter([torch.full((4, 2), float("nan"))] * 3)
    with pytest.raises(FloatingPointError, match="loss became nan at step 0"):
        train.train_loop(model, batches, lambda m, x: m(x).mean(), steps=3, progress=False)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        train.train_loop(model, batches, lambda m, x: m(x).mean(), steps=0, progress=False)


def test_exact_match_ignores_padding_and_checks_shapes():
    pred = torch.tensor([[1, 2, 0], [1, 3, 0], [4, 4, 4]])
    tgt = torch.tensor([[1, 2, 0], [1, 2, 0], [4, 4, 5]])
    assert train.exact_match(pred, tgt, pad_id=0).tolist() == [True, False, False]
    with pytest.raises(ValueError, match=r"predicted has shape \(3, 3\) but target has shape \(3, 2\)"):
        train.exact_match(pred, tgt[:, :2])


def test_count_parameters():
    assert train.count_parameters(nn.Linear(3, 2)) == 8
    frozen = nn.Linear(3, 2).requires_grad_(False)
    assert train.count_parameters(frozen) == 0 and train.count_parameters(frozen, trainable_only=False) == 8


def test_cosine_schedule_lowers_the_learning_rate_to_zero_along_half_a_cosine():
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []

    def loss_fn(m, x):
        seen.append(optimizer.param_groups[0]["lr"])
        return m(x).pow(2).mean()

    train.train_loop(model, lambda step: torch.ones(3, 2), loss_fn, steps=4, optimizer=optimizer,
                     schedule="cosine", progress=False)
    assert seen == pytest.approx([0.1, 0.1 * (1 + 0.5 ** 0.5) / 2, 0.05, 0.1 * (1 - 0.5 ** 0.5) / 2])
    constant = []
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train.train_loop(model, lambda step: torch.ones(3, 2),
                     lambda m, x: (constant.append(optimizer.param_groups[0]["lr"]), m(x).sum())[1],
                     steps=3, optimizer=optimizer, progress=False)
    assert constant == [0.1, 0.1, 0.1]
    with pytest.raises(ValueError, match="schedule must be 'constant' or 'cosine'"):
        train.train_loop(model, lambda step: torch.ones(3, 2), loss_fn, steps=2, schedule="linear", progress=False)


def test_seed_everything_leaves_pythonhashseed_alone(monkeypatch):
    """PYTHONHASHSEED only acts when an interpreter starts: setting it in a running one seeded nothing
    and leaked a misleading value into every subprocess (issue 9)."""
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    before = hash("attention")
    train.seed_everything(7)
    assert "PYTHONHASHSEED" not in os.environ
    assert hash("attention") == before
