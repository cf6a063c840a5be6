"""Notebook 10's explorer: one input, four attributions side by side, against the known truth.

``attribution_table(model, tokens, labels)`` computes the four attributions
(raw attention, rollout, gradient x input, leave-one-out) of a batch of the
known-token task, each row scaled to sum to 1 so they share one colour scale;
``attributions_figure`` draws one example; ``attributions_explorer`` picks the
example with a slider.
"""

from __future__ import annotations

import torch
from matplotlib.figure import Figure

from ..experiments.interpret import METHODS, KnownTokenTask, attributions
from .core import Explorer, _control

__all__ = ["attribution_table", "attributions_figure", "attributions_explorer"]


def attribution_table(model, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, L) tokens, (B,) labels -> (B, 4, L): the four attributions (order METHODS), rows summing to 1."""
    att = attributions(model, tokens, labels)
    table = torch.stack([att[m] for m in METHODS], dim=1)  # (B, 4, L)
    return table / table.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def attributions_figure(table: torch.Tensor, token_labels: list[str], relevant: int, title: str = "") -> Figure:
    """One example: table (4, L) of attributions, the token labels, the index of the relevant token."""
    if table.dim() != 2 or table.shape[0] != len(METHODS) or table.shape[1] != len(token_labels):
        raise ValueError(f"table must be ({len(METHODS)}, {len(token_labels)}), got {tuple(table.shape)}")
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(table.numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(token_labels)), token_labels)
    ax.set_yticks(range(len(METHODS)), METHODS)
    ax.get_xticklabels()[relevant].set_color("red")
    ax.add_patch(__import__("matplotlib.patches", fromlist=["Rectangle"]).Rectangle(
        (relevant - 0.5, -0.5), 1, len(METHODS), fill=False, edgecolor="red", linewidth=2))
    ax.set_xlabel("input token (red: the one the label depends on)")
    ax.set_title(title or "share of each attribution per token")
    fig.colorbar(image, ax=ax, label="share of the attribution")
    return fig


def attributions_explorer(model, batch, task: KnownTokenTask, example: int = 0) -> Explorer:
    """Pick an example of ``batch`` (a KnownTokenBatch) and compare the four attributions.

    ``last_result`` holds ``table`` (4, L), ``labels`` (token names) and ``relevant``."""
    table = attribution_table(model, batch.tokens, batch.labels)  # (B, 4, L), computed once
    n = len(batch.tokens)
    if not 0 <= example < n:
        raise ValueError(f"example must be in [0, {n}), got {example}")
    controls = {"example": _control("IntSlider", value=example, min=0, max=n - 1, description="example",
                                    continuous_update=False)}

    def compute(example):
        return {"table": table[example], "labels": task.describe(batch.tokens[example]),
                "relevant": int(batch.relevant[example].argmax()), "label": int(batch.labels[example])}

    def draw(result, **values):
        return attributions_figure(result["table"], result["labels"], result["relevant"],
                                   title=f"example {values['example']}: label S{result['label']}")

    return Explorer(controls, compute, draw, title="Four attributions of one prediction")
