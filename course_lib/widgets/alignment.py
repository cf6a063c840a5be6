"""Notebook 02's explorer: a trained encoder-decoder's attention, one output step at a time."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..plots import attention_bar, attention_heatmap
from .core import Explorer, _control




def _alignment_inputs(weights, src_tokens, out_tokens) -> tuple[np.ndarray, list[str], list[str]]:
    w = weights.detach().cpu().numpy() if isinstance(weights, torch.Tensor) else np.asarray(weights, dtype=float)
    if w.ndim != 2:
        raise ValueError(f"weights must be one (T, S) alignment (output steps x source positions), got shape "
                         f"{w.shape}")
    src, out = [str(t) for t in src_tokens], [str(t) for t in out_tokens]
    if w.shape != (len(out), len(src)):
        raise ValueError(f"weights has shape {w.shape} but there are {len(out)} output tokens and {len(src)} "
                         f"source tokens; expected ({len(out)}, {len(src)})")
    return w, src, out


def alignment_figure(weights, src_tokens, out_tokens, step: int | None = None, title: str = "") -> Figure:
    """An encoder-decoder alignment: heatmap of weights (T, S) with output tokens on
    the rows and source tokens on the columns; with ``step``, that decoder step's
    row is framed and drawn as a bar chart over the source -> Figure."""
    w, src, out = _alignment_inputs(weights, src_tokens, out_tokens)
    T, S = w.shape
    shown = [repr(t)[1:-1] if t.strip() == t and t else f"'{t}'" for t in src]  # make spaces visible
    if step is None:
        fig = Figure(figsize=(min(2.5 + 0.3 * S, 14.0), min(1.8 + 0.3 * T, 8.0)), layout="constrained")
        ax_map = fig.subplots()
    else:
        if not isinstance(step, (int, np.integer)) or not -T <= step < T:
            raise IndexError(f"step must be an int in 0..{T - 1} (an output position), got {step!r}")
        step = int(step) % T
        fig = Figure(figsize=(min(2.5 + 0.3 * S, 14.0), min(4.0 + 0.3 * T, 10.0)), layout="constrained")
        ax_map, ax_bar = fig.subplots(2, 1, height_ratios=[max(T, 2), 3])
    attention_heatmap(w, x_labels=shown, y_labels=out, ax=ax_map, vmin=0.0, vmax=1.0,
                      title=title or "alignment: which source symbols each output step read")
    ax_map.set_xlabel("source (encoder states)")
    ax_map.set_ylabel("output (decoder steps)")
    if step is not None:
        ax_map.add_patch(Rectangle((-0.5, step - 0.5), S, 1.0, fill=False, edgecolor="tab:orange", linewidth=2.5))
        row = w[step]
        top = int(row.argmax())
        attention_bar(row, labels=shown, ax=ax_bar,
                      title=f"step {step} writes {out[step]!r}: reads {src[top]!r} most ({row[top]:.2f})")
        ax_bar.set_ylim(0, 1.0)
        ax_bar.set_xlabel("source (encoder states)")
    return fig


def alignment_explorer(examples: Sequence[Mapping[str, Any]], example: int = 0, step: int = 0) -> Explorer:
    """Step through a decoder's output positions and see where each one looked.

    examples: a list of {"name": str, "weights": (T, S), "src_tokens": S labels,
    "out_tokens": T labels}, e.g. built from ``rnn.translate``. ``last_result``
    holds the chosen example's ``weights``, ``row`` (the chosen step's weights),
    ``top`` (the most attended source token) and ``step``.
    """
    if not isinstance(examples, Sequence) or isinstance(examples, (str, bytes)) or not examples:
        raise ValueError("examples must be a non-empty list of dicts with name, weights, src_tokens, out_tokens")
    table = []
    for k, ex in enumerate(examples):
        missing = {"name", "weights", "src_tokens", "out_tokens"} - set(ex)
        if missing:
            raise ValueError(f"examples[{k}] lacks {sorted(missing)}; expected name, weights, src_tokens, out_tokens")
        w, src, out = _alignment_inputs(ex["weights"], ex["src_tokens"], ex["out_tokens"])
        table.append((str(ex["name"]), w, src, out))
    if not 0 <= example < len(table):
        raise IndexError(f"example must be in 0..{len(table) - 1}, got {example}")
    steps = len(table[example][3])
    controls = {
        "example": _control("Dropdown", options=[(name, k) for k, (name, *_rest) in enumerate(table)],
                            value=example, description="example", layout={"width": "auto"}),
        "step": _control("IntSlider", value=min(max(step, 0), steps - 1), min=0, max=steps - 1,
                         description="output step", continuous_update=True),
    }

    def compute(example, step):
        name, w, src, out = table[example]
        step = min(step, len(out) - 1)
        row = w[step]
        return {"name": name, "weights": w, "src_tokens": src, "out_tokens": out, "step": step, "row": row,
                "top": src[int(row.argmax())]}

    def draw(result, **values):
        return alignment_figure(result["weights"], result["src_tokens"], result["out_tokens"], result["step"],
                                title=result["name"])

    def on_example(change):
        n = len(table[change["new"]][3])
        slider = controls["step"]
        slider.value = min(slider.value, n - 1)
        slider.max = n - 1

    return Explorer(controls, compute, draw, title="Alignment explorer: one decoder step at a time",
                    links={"example": on_example})
