"""The trained models of notebook 09: one attention layer on associative recall, softmax against linear.

``recall_softmax`` and ``recall_linear`` share one config and one training
function; the only difference is the attention switch, so both see the same
batches in the same order. Notebook 09 also trains ``recall_linear`` with
``feature_dim=8`` to show that the number of pairs linear attention can hold
grows with its feature dimension.

    from course_lib import experiments
    run = experiments.run("recall_linear", feature_dim=8)
    run.history.evals["accuracy@16"]      # [(steps, accuracy on 1,000 fresh sequences of 16 pairs)]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.recall import RecallTask
from ..efficient.recall import RecallModel, recall_accuracy
from ..train import CachedRun, device, train_loop
from .core import cached, register

__all__ = ["RecallConfig", "RECALL", "recall_task", "recall_softmax", "recall_linear"]


@dataclass(frozen=True)
class RecallConfig:
    """Associative recall with 1..`max_pairs` pairs per sequence (uniform per batch), one attention layer."""

    num_keys: int = 64
    num_values: int = 64
    max_pairs: int = 64
    d_model: int = 64
    feature_dim: int = 16
    value_dim: int = 64
    attention: str = "softmax"
    eval_pairs: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    eval_samples: int = 1000
    steps: int = 800
    batch_size: int = 128
    lr: float = 3e-3
    seed: int = 0


#: The softmax model of notebook 09 (recall_linear uses attention="linear").
RECALL = RecallConfig()


def recall_task(config: RecallConfig = RECALL) -> RecallTask:
    """The RecallTask a config trains on."""
    return RecallTask(config.num_keys, config.num_values)


def _recall(config: RecallConfig, progress: bool = True) -> CachedRun:
    """One attention layer trained on associative recall; evals: accuracy per number of pairs."""
    task = recall_task(config)
    dev = device()
    if max(config.eval_pairs) > config.max_pairs:
        raise ValueError(f"eval_pairs {config.eval_pairs} go beyond max_pairs = {config.max_pairs}")

    def build():
        torch.manual_seed(config.seed)
        return RecallModel(config.num_keys, config.num_values, config.d_model, config.feature_dim,
                           config.value_dim, config.attention).to(dev)

    def fit(model):
        generator = torch.Generator().manual_seed(config.seed)  # the same batches for both attentions

        def batch(_step):
            n_pairs = int(torch.randint(1, config.max_pairs + 1, (1,), generator=generator))
            return task.batch(config.batch_size, n_pairs, generator).to(dev)

        def loss_fn(m, b):
            return F.cross_entropy(m(b.keys, b.values, b.query), b.target)

        def eval_fn(m):
            test = torch.Generator().manual_seed(10_000 + config.seed)  # fresh sequences, never trained on
            return {f"accuracy@{n}": recall_accuracy(m, task, n, config.eval_samples, test)
                    for n in config.eval_pairs}

        return train_loop(model, batch, loss_fn, config.steps, lr=config.lr, eval_fn=eval_fn, progress=progress,
                          desc=f"recall, {config.attention} attention, d = {config.feature_dim}")

    return cached("recall", config, build, fit)


recall_softmax = register("recall_softmax", "09_efficient_attention", RECALL,
                          "one softmax-attention layer on associative recall")(_recall)
recall_linear = register("recall_linear", "09_efficient_attention", RecallConfig(attention="linear"),
                         "one linear-attention layer on associative recall, same batches",
                         variants=({"feature_dim": 8},))(_recall)
