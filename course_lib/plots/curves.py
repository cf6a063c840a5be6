"""Training curves and accuracy by sequence length."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import PercentFormatter

from ._common import _label_axes, _rotation, _to_numpy


def _curve_xy(name: str, value) -> tuple[np.ndarray, np.ndarray]:
    """y values, an (x, y) pair of sequences, or a list of (x, y) points -> x, y."""
    if isinstance(value, tuple) and len(value) == 2 and all(np.ndim(v) == 1 for v in value):
        x, y = _to_numpy(f"curves[{name!r}][0]", value[0]), _to_numpy(f"curves[{name!r}][1]", value[1])
    else:
        arr = _to_numpy(f"curves[{name!r}]", value)
        if arr.ndim == 1:
            x, y = np.arange(len(arr), dtype=float), arr
        elif arr.ndim == 2 and arr.shape[1] == 2:
            x, y = arr[:, 0], arr[:, 1]
        else:
            raise ValueError(
                f"curves[{name!r}] must be a sequence of y values, an (x, y) pair or a list of (x, y) points, "
                f"got shape {arr.shape}"
            )
    if x.shape != y.shape:
        raise ValueError(f"curves[{name!r}] has {len(x)} x values but {len(y)} y values; expected equal lengths")
    return x, y


_MIN_POINTS_TO_SMOOTH = 20  # a handful of evaluation points is drawn as it is


def _ema(y: np.ndarray, weight: float) -> np.ndarray:
    """Exponential moving average with bias correction (TensorBoard-style smoothing)."""
    out = np.empty_like(y)
    running, correction = 0.0, 0.0
    for t, value in enumerate(y):
        running = weight * running + (1 - weight) * value
        correction = weight * correction + (1 - weight)
        out[t] = running / correction
    return out


def plot_curves(curves, xlabel="step", ylabel="loss", ax=None, title=None, logy=False, smooth=0.0):
    """Training curves with a legend: curves = {name: values}.

    Each value is a sequence of y (x = 0, 1, ...), an (x, y) pair of sequences,
    or a list of (x, y) points (the format of ``History.evals``). ``smooth`` in
    [0, 1) is the weight of an exponential moving average: the raw curve is
    drawn faintly and the smoothed one on top (curves of at most 20 points,
    such as periodic evaluations, are never smoothed). Returns the Axes.
    """
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError(f"curves must be a non-empty dict name -> values, got {type(curves).__name__} {curves!r}")
    if isinstance(smooth, bool) or not isinstance(smooth, (int, float)) or not 0 <= smooth < 1:
        raise ValueError(f"smooth must be a number in [0, 1) (EMA weight; 0 = none), got {smooth!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
    for k, (name, value) in enumerate(curves.items()):
        x, y = _curve_xy(name, value)
        colour = f"C{k % 10}"
        if smooth > 0 and len(y) > _MIN_POINTS_TO_SMOOTH:
            ax.plot(x, y, color=colour, alpha=0.25, linewidth=1)
            ax.plot(x, _ema(y, smooth), color=colour, label=str(name), linewidth=1.8)
        else:
            marker = "o" if len(x) <= 30 else None
            ax.plot(x, y, color=colour, label=str(name), linewidth=1.5, marker=marker, markersize=3)
    _label_axes(ax, xlabel, ylabel, title, logy)
    ax.legend()
    return ax


def plot_accuracy_by_length(
    buckets, ax=None, title=None, xlabel="sequence length", ylabel="exact-match accuracy"
):
    """Accuracy per length bucket for several models on one plot (Bahdanau et al. 2014, Fig. 2).

    buckets: {model name: {bucket label: accuracy in [0, 1]}}; the inner value
    may also be a list of (label, accuracy) pairs. Numeric labels (lengths) are
    placed at their value; other labels ("1-5", "6-10") are placed in order of
    first appearance. The y axis is in percent, 0 to 100. Returns the Axes.
    ValueError if an accuracy is outside [0, 1] (a percentage passed by mistake).
    """
    if not isinstance(buckets, Mapping) or not buckets:
        raise ValueError(f"buckets must be a non-empty dict model -> {{bucket: accuracy}}, got {buckets!r}")
    series = {}
    for model, values in buckets.items():
        pairs = list(values.items()) if isinstance(values, Mapping) else [tuple(p) for p in values]
        if not pairs or any(len(p) != 2 for p in pairs):
            raise ValueError(
                f"buckets[{model!r}] must be a non-empty {{bucket: accuracy}} dict or list of pairs, got {values!r}"
            )
        for label, acc in pairs:
            acc = float(acc)
            if not 0.0 <= acc <= 1.0:
                raise ValueError(f"buckets[{model!r}][{label!r}] = {acc} is not an accuracy in [0, 1] (a percentage?)")
        series[str(model)] = [(label, float(acc)) for label, acc in pairs]
    labels = [label for pairs in series.values() for label, _ in pairs]
    numeric = all(isinstance(t, (int, float, np.integer, np.floating)) and not isinstance(t, bool) for t in labels)
    order = list(dict.fromkeys(str(t) for t in labels))
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
    markers = "osD^v<>"
    for k, (model, pairs) in enumerate(series.items()):
        if numeric:
            pairs = sorted(pairs, key=lambda p: float(p[0]))
            x = [float(label) for label, _ in pairs]
        else:
            x = [order.index(str(label)) for label, _ in pairs]
        ax.plot(x, [acc for _, acc in pairs], marker=markers[k % len(markers)], label=model, linewidth=1.8)
    if not numeric:
        ax.set_xticks(range(len(order)), order, rotation=45 if _rotation(order) else 0)
    ax.set_ylim(-0.03, 1.03)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title if title is not None else "accuracy by length")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax

