"""Attention maps: one heatmap, a grid of heads, one query's weights as bars."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from ._common import _check_labels, _rotation, _to_numpy


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

