"""Notebook 09's explorer: the online softmax, one block of keys at a time.

``online_softmax_figure`` draws the state after a given step: the row of
scores with the blocks already read, the running maximum, the weights the
row would get if it stopped here (against the true softmax), and the running
sum l, rescaled by alpha = exp(m_old - m_new) whenever a block raises the
maximum. ``online_softmax_explorer`` steps through it with a slider.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from ..efficient.tiled import online_softmax_trace
from .core import Explorer, _control

__all__ = ["example_scores", "online_softmax_figure", "online_softmax_explorer"]


def example_scores(length: int = 24, seed: int = 0, jumps: int = 2) -> torch.Tensor:
    """One row of ``length`` scores (float64) whose maximum rises ``jumps`` times after the first block:
    gaussian scores, with the largest ones placed late, so the rescaling has work to do."""
    if length < 2:
        raise ValueError(f"length must be at least 2, got {length}")
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(length, generator=g, dtype=torch.float64)
    positions = torch.linspace(length // 3, length - 1, jumps).round().long() if jumps else torch.tensor([], dtype=torch.long)
    for k, p in enumerate(positions.tolist()):
        scores[p] = scores.max() + 1.0 + k  # each a new maximum, later than the one before
    return scores


def _draw_scores(ax, scores: np.ndarray, step, block_size: int) -> None:
    S = len(scores)
    start, stop = step.keys
    colours = ["tab:blue" if j < start else ("tab:orange" if j < stop else "lightgray") for j in range(S)]
    ax.bar(np.arange(S), scores, color=colours)
    for edge in range(block_size, S, block_size):
        ax.axvline(edge - 0.5, color="gray", linewidth=0.6, linestyle=":")
    ax.hlines(step.max_after, -0.5, stop - 0.5, color="tab:red", linewidth=1.5, label=f"running max m = {step.max_after:.2f}")
    if step.max_before != float("-inf"):
        ax.hlines(step.max_before, -0.5, start - 0.5, color="tab:red", linewidth=1.0, linestyle="--",
                  label=f"max before this block = {step.max_before:.2f}")
    ax.set_xlabel("key position j (blue: read before, orange: this block, gray: not read yet)")
    ax.set_ylabel("score s_j")
    ax.set_title(f"step {step.index + 1}: block of keys {start}..{stop - 1}")
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3, axis="y")


def _draw_weights(ax, scores: torch.Tensor, step) -> None:
    S = len(scores)
    final = torch.softmax(scores, -1).numpy()
    ax.bar(np.arange(S), step.weights.numpy(), color="tab:green", label="exp(s_j - m) / l, keys read so far")
    ax.plot(np.arange(S), final, "k_", markersize=10, markeredgewidth=1.5, label="softmax of the whole row")
    ax.set_xlabel("key position j")
    ax.set_ylabel("weight")
    ax.set_ylim(0, max(1e-9, float(final.max()), float(step.weights.max())) * 1.15)
    ax.set_title("weights if the row stopped here (exact after the last block)")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3, axis="y")


def _draw_sums(ax, steps, upto: int) -> None:
    shown = steps[: upto + 1]
    x = np.arange(len(steps))
    width = 0.27
    before = [s.sum_before for s in shown]
    rescaled = [s.sum_rescaled for s in shown]
    after = [s.sum_after for s in shown]
    ax.bar(x[: len(shown)] - width, before, width, color="lightsteelblue", label="l before the block")
    ax.bar(x[: len(shown)], rescaled, width, color="tab:purple", label="alpha * l (rescaled to the new max)")
    ax.bar(x[: len(shown)] + width, after, width, color="tab:blue", label="l' = alpha * l + this block's sum")
    for s in shown:
        if s.index and s.alpha < 1:
            ax.annotate(f"alpha = {s.alpha:.2g}", (s.index, s.sum_before), textcoords="offset points",
                        xytext=(0, 4), ha="center", fontsize=7)
    ax.set_xticks(x, [f"{s.keys[0]}..{s.keys[1] - 1}" for s in steps], fontsize=7)
    ax.set_xlim(-0.6, len(steps) - 0.4)
    ax.set_ylim(0, max(after + before) * 1.55)
    ax.set_xlabel("block of keys read")
    ax.set_ylabel("running sum l of exp(s - m)")
    ax.set_title("the running sum, rescaled each time the max rises")
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    ax.grid(alpha=0.3, axis="y")


def online_softmax_figure(scores=None, block_size: int = 4, step: int | None = None) -> Figure:
    """The online softmax of ``scores`` (default :func:`example_scores`) after block ``step``
    (0-based, default the last) -> Figure with three panels: scores and running max, weights so far,
    running sums."""
    scores = example_scores() if scores is None else torch.as_tensor(scores, dtype=torch.float64)
    steps = online_softmax_trace(scores, block_size)
    step = len(steps) - 1 if step is None else int(step)
    if not 0 <= step < len(steps):
        raise ValueError(f"step must be in [0, {len(steps)}) for {len(scores)} keys in blocks of {block_size}, "
                         f"got {step}")
    fig = Figure(figsize=(11, 7), layout="constrained")
    top, bottom = fig.subfigures(2, 1)
    _draw_scores(top.subplots(), scores.numpy(), steps[step], block_size)
    ax_w, ax_l = bottom.subplots(1, 2)
    _draw_weights(ax_w, scores, steps[step])
    _draw_sums(ax_l, steps, step)
    return fig


def online_softmax_explorer(length: int = 24, block_size: int = 4, seed: int = 0) -> Explorer:
    """Step through the online softmax of one row of scores, block by block.

    Controls: step (first: the block just read), block_size, seed (another row of
    scores). ``last_result`` holds ``scores`` (S,), ``steps`` (the full trace, see
    :func:`course_lib.efficient.online_softmax_trace`) and ``step`` (the one shown).
    """
    n_steps = -(-length // block_size)
    controls = {
        "step": _control("IntSlider", value=0, min=0, max=n_steps - 1, description="block read",
                         continuous_update=False),
        "block_size": _control("IntSlider", value=block_size, min=1, max=length, description="block size",
                                continuous_update=False),
        "seed": _control("IntSlider", value=seed, min=0, max=20, description="scores seed", continuous_update=False),
    }

    def compute(step, block_size, seed):
        scores = example_scores(length, seed)
        steps = online_softmax_trace(scores, block_size)
        return {"scores": scores, "steps": steps, "step": steps[min(step, len(steps) - 1)]}

    def draw(result, block_size, **values):
        return online_softmax_figure(result["scores"], block_size, result["step"].index)

    def on_block_size(change):
        last = -(-length // change["new"]) - 1
        controls["step"].value = min(controls["step"].value, last)
        controls["step"].max = last

    return Explorer(controls, compute, draw, title="Online softmax, one block of keys at a time",
                    links={"block_size": on_block_size})
