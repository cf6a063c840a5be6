"""Plots of the course: attention maps, training curves, accuracy by length, scaling.

Plots never train: every function takes numbers already measured (tensors,
arrays, lists, dicts) and draws them. Each takes an optional ``ax`` and returns
the Axes it drew on (a Figure for multi-panel plots), with labelled axes and a
title, and works headless (Agg backend). The fits behind the scaling plot are
pure functions (:func:`polyfit_r2`, :func:`fit_power`) that notebooks assert on.
"""

from __future__ import annotations

import math
from typing import Mapping, NamedTuple, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator, PercentFormatter

__all__ = [
    "attention_heatmap",
    "attention_grid",
    "attention_bar",
    "plot_curves",
    "plot_accuracy_by_length",
    "plot_scaling",
    "PolyFit",
    "polyfit_r2",
    "fit_power",
]


def _to_numpy(name: str, values) -> np.ndarray:
    """Tensor (any device, with or without grad), array or nested list -> float ndarray."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().float().numpy()
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} must be numeric (a tensor, array or list of numbers), got {type(values).__name__}"
        ) from err
    return arr


def _check_labels(name: str, labels, expected: int, shape: tuple, what: str) -> list[str] | None:
    if labels is None:
        return None
    if isinstance(labels, str):
        raise TypeError(
            f"{name} must be a sequence of labels, one per {what[:-1]}, got the string {labels!r}; "
            "use list(...) or .split()"
        )
    labels = [str(t) for t in labels]
    if len(labels) != expected:
        raise ValueError(
            f"{name} has {len(labels)} labels but the weights of shape {shape} have {expected} {what}; "
            f"expected {expected} labels"
        )
    return labels


def _rotation(labels: Sequence[str]) -> int:
    """Vertical x tick labels once they would collide."""
    longest = max((len(t) for t in labels), default=0)
    return 90 if longest > 3 or len(labels) > 20 else 0


# --- attention maps -------------------------------------------------------------


def attention_heatmap(
    weights,
    x_labels=None,
    y_labels=None,
    ax=None,
    title=None,
    cmap="viridis",
    annotate=False,
    colorbar=True,
    vmin=None,
    vmax=None,
):
    """One attention map as a heatmap: weights (L, S), row i = query i, column j = key j.

    x axis: the keys (tokens attended to), labelled by ``x_labels`` (S); y axis:
    the queries (tokens attending), labelled by ``y_labels`` (L), first query at
    the top, as the matrix is printed. Long x labels are drawn vertically.
    ``annotate=True`` writes each weight in its cell. Non-negative maps start
    the colour scale at 0 (``vmin``/``vmax`` override). Returns the Axes.
    ValueError if the map is not 2-D or a label count does not match it.
    """
    w = _to_numpy("weights", weights)
    if w.ndim != 2:
        hint = "; pick one map first, e.g. weights[0, head]" if w.ndim > 2 else ""
        raise ValueError(f"weights must be a 2-D (L, S) attention map, got shape {w.shape}{hint}")
    L, S = w.shape
    x_labels = _check_labels("x_labels", x_labels, S, w.shape, "keys (columns)")
    y_labels = _check_labels("y_labels", y_labels, L, w.shape, "queries (rows)")
    if ax is None:
        width = min(max(3.5, 0.42 * S + 2.0), 14.0)
        height = min(max(3.0, 0.42 * L + 1.2), 14.0)
        _, ax = plt.subplots(figsize=(width, height), layout="constrained")
    finite = w[np.isfinite(w)]
    if vmin is None and finite.size and finite.min() >= 0:
        vmin = 0.0
    image = ax.imshow(w, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", aspect="equal")
    ax.grid(False)
    if x_labels is not None:
        ax.set_xticks(range(S), x_labels, rotation=_rotation(x_labels))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if y_labels is not None:
        ax.set_yticks(range(L), y_labels)
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(length=0)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title if title is not None else "attention weights")
    if annotate:
        for i in range(L):
            for j in range(S):
                value = w[i, j]
                # dark text on light cells, light text on dark cells, whatever the colour map
                r, g, b, _ = image.cmap(image.norm(value)) if np.isfinite(value) else (1.0, 1.0, 1.0, 1.0)
                colour = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=colour)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, shrink=0.8, label="weight")
    return ax


def attention_grid(
    weights,
    x_labels=None,
    y_labels=None,
    titles=None,
    ncols=4,
    suptitle=None,
    cmap="viridis",
    annotate=False,
):
    """Several attention maps side by side (one per head or layer) -> Figure.

    weights: (H, L, S) tensor/array or a list of (L, S) maps. Labels apply to
    every panel (token labels are written on the left column and bottom row
    only); ``titles`` has one entry per map (default "head 0", "head 1", ...).
    All panels share one colour scale, starting at 0, so a diffuse head looks
    paler than a sharp one. The Axes are ``fig.axes[:n]``.
    """
    if isinstance(weights, (list, tuple)):
        maps = [_to_numpy(f"weights[{k}]", m) for k, m in enumerate(weights)]
    else:
        stacked = _to_numpy("weights", weights)
        if stacked.ndim != 3:
            hint = "; pick one batch element first, e.g. weights[0]" if stacked.ndim == 4 else ""
            raise ValueError(f"weights must be (H, L, S) or a list of (L, S) maps, got shape {stacked.shape}{hint}")
        maps = list(stacked)
    if not maps:
        raise ValueError("weights is empty: expected at least one (L, S) map")
    for k, m in enumerate(maps):
        if m.ndim != 2:
            raise ValueError(f"weights[{k}] must be a 2-D (L, S) map, got shape {m.shape}")
    n = len(maps)
    if titles is None:
        titles = [f"head {k}" for k in range(n)]
    elif isinstance(titles, str) or len(titles) != n:
        raise ValueError(f"titles must have one entry per map ({n}), got {titles!r}")
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    L, S = maps[0].shape
    panel = min(max(2.4, 0.3 * max(L, S) + 1.2), 6.0)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel * ncols + 1.0, panel * nrows + 0.4), squeeze=False, layout="constrained"
    )
    finite = np.concatenate([m[np.isfinite(m)].ravel() for m in maps])
    vmax = float(finite.max()) if finite.size else None
    vmin = 0.0 if finite.size and finite.min() >= 0 else None
    for k, (m, ax) in enumerate(zip(maps, axes.flat)):
        row, col = divmod(k, ncols)
        attention_heatmap(
            m, x_labels, y_labels, ax=ax, title=titles[k], cmap=cmap, annotate=annotate,
            colorbar=False, vmin=vmin, vmax=vmax,
        )
        if col > 0:
            ax.set_ylabel("")
            if y_labels is not None:
                ax.tick_params(labelleft=False)
        last_in_column = k + ncols >= n
        if not last_in_column:
            ax.set_xlabel("")
            if x_labels is not None:
                ax.tick_params(labelbottom=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    fig.colorbar(axes.flat[0].images[0], ax=axes.ravel().tolist(), shrink=0.8, label="weight")
    fig.suptitle(suptitle if suptitle is not None else f"attention maps ({n})")
    return fig


def attention_bar(row, labels=None, ax=None, title=None):
    """One query's attention weights over the keys as bars: row (S,), labels (S,).

    The most attended key is highlighted. Returns the Axes.
    """
    w = _to_numpy("row", row)
    if w.ndim != 1:
        raise ValueError(f"row must be one query's weights, shape (S,), got shape {w.shape}")
    labels = _check_labels("labels", labels, w.shape[0], w.shape, "keys")
    if ax is None:
        _, ax = plt.subplots(figsize=(min(max(4.0, 0.45 * len(w) + 1.5), 14.0), 3.2), layout="constrained")
    colours = ["tab:blue"] * len(w)
    if len(w) and np.isfinite(w).any():
        colours[int(np.nanargmax(w))] = "tab:orange"
    ax.bar(range(len(w)), w, color=colours)
    if labels is not None:
        ax.set_xticks(range(len(w)), labels, rotation=_rotation(labels))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    top = float(np.nanmax(w)) if len(w) and np.isfinite(w).any() else 0.0
    ax.set_ylim(0, top * 1.12 if top > 0 else 1.0)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("attention weight")
    ax.set_title(title if title is not None else "attention of one query")
    ax.grid(axis="y", alpha=0.3)
    return ax


# --- curves -----------------------------------------------------------------------


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
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title if title is not None else f"{ylabel} vs {xlabel}")
    ax.grid(alpha=0.3)
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


# --- scaling ------------------------------------------------------------------------


class PolyFit(NamedTuple):
    """A least-squares polynomial: coefficients highest power first (np.polyval order), and R^2."""

    coefficients: np.ndarray
    r2: float


def _xy(x, y, name_y: str = "y") -> tuple[np.ndarray, np.ndarray]:
    x, y = _to_numpy("x", x), _to_numpy(name_y, y)
    if x.ndim != 1 or y.shape != x.shape:
        raise ValueError(f"x and {name_y} must be 1-D of equal length, got shapes {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"x and {name_y} must be finite, got x={x.tolist()} {name_y}={y.tolist()}")
    return x, y


def _r2(y: np.ndarray, predicted: np.ndarray) -> float:
    residual = float(np.sum((y - predicted) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - residual / total if total > 0 else (1.0 if residual == 0 else 0.0)


def polyfit_r2(x, y, degree: int) -> PolyFit:
    """Least-squares polynomial of ``degree`` through (x, y) -> PolyFit(coefficients, r2).

    Coefficients are highest power first (use ``np.polyval``); r2 is the
    coefficient of determination 1 - SS_res / SS_tot of the fit.
    """
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"degree must be a non-negative int, got {degree!r}")
    x, y = _xy(x, y)
    if len(x) < degree + 1:
        raise ValueError(f"a degree-{degree} fit needs at least {degree + 1} points, got {len(x)}")
    coefficients = np.polyfit(x, y, degree)
    return PolyFit(coefficients, _r2(y, np.polyval(coefficients, x)))


def _power_fit(x, y) -> tuple[float, float, float]:
    x, y = _xy(x, y)
    if len(x) < 2:
        raise ValueError(f"a power-law fit needs at least 2 points, got {len(x)}")
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError(
            f"a power-law fit needs x > 0 and y > 0 (it fits log y against log x), got x={x.tolist()} y={y.tolist()}"
        )
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    r2 = _r2(np.log(y), slope * np.log(x) + intercept)
    return float(slope), float(np.exp(intercept)), r2


def fit_power(x, y) -> float:
    """Exponent p of the power law y ~ c x^p, the slope of the least-squares
    line through (log x, log y). Quadratic cost gives p close to 2, linear
    close to 1. x and y must be positive."""
    return _power_fit(x, y)[0]


def _plain_log_ticks(ax, xs: np.ndarray, most: int = 6) -> None:
    """On a log x axis, label at most `most` of the measured sizes as plain numbers and no minor ticks:
    matplotlib's default minor labels ("3×10²4×10²") run into each other."""
    from matplotlib.ticker import NullFormatter, NullLocator

    values = np.unique(xs[xs > 0])
    if len(values) == 0:
        return
    step = -(-len(values) // most)  # ceil: every step-th size
    ticks = values[::step]
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(ticks, [f"{v:g}" for v in ticks])


def _format_poly(coefficients: np.ndarray) -> str:
    powers = ["x²", "x", ""] if len(coefficients) == 3 else ["x", ""]
    terms = [f"{c:.3g}{p}" for c, p in zip(coefficients, powers)]
    return " + ".join(terms).replace("+ -", "− ")


def plot_scaling(
    x,
    ys,
    fit="quadratic",
    xlabel="sequence length",
    ylabel="time (ms)",
    ax=None,
    logx=False,
    logy=False,
    title=None,
):
    """Measured cost against size, one series per entry of ``ys`` = {name: values (len(x),)}.

    Each series is drawn as points, with the fitted curve dashed:
    ``fit="quadratic"`` or ``"linear"`` (least-squares polynomial, legend shows
    its coefficients and R^2), ``"power"`` (y = c x^p from a log-log fit, legend
    shows p), or None. Returns the Axes; the numbers come from
    :func:`polyfit_r2` and :func:`fit_power`, which notebooks call to assert.
    """
    degrees = {"quadratic": 2, "linear": 1}
    if fit not in (None, "power", *degrees):
        raise ValueError(f"fit must be 'quadratic', 'linear', 'power' or None, got {fit!r}")
    if not isinstance(ys, Mapping) or not ys:
        raise ValueError(f"ys must be a non-empty dict name -> measured values, got {type(ys).__name__}")
    xs = _to_numpy("x", x)
    if xs.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {xs.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
    dense = np.geomspace(xs.min(), xs.max(), 200) if logx and xs.min() > 0 else np.linspace(xs.min(), xs.max(), 200)
    for k, (name, values) in enumerate(ys.items()):
        xv, yv = _xy(xs, values, name_y=f"ys[{name!r}]")
        colour = f"C{k % 10}"
        label = str(name)
        if fit in degrees:
            coefficients, r2 = polyfit_r2(xv, yv, degrees[fit])
            ax.plot(dense, np.polyval(coefficients, dense), "--", color=colour, linewidth=1.2)
            label += f": {_format_poly(coefficients)} (R²={r2:.3f})"
        elif fit == "power":
            p, c, r2 = _power_fit(xv, yv)
            ax.plot(dense, c * dense**p, "--", color=colour, linewidth=1.2)
            label += rf": $\propto x^{{{p:.2f}}}$ (R²={r2:.3f})"
        ax.plot(xv, yv, "o", color=colour, label=label, markersize=5)
    if logx:
        ax.set_xscale("log")
        _plain_log_ticks(ax, xs)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title if title is not None else f"{ylabel} vs {xlabel}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax
