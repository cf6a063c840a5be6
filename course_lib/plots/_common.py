"""What every plot does with its inputs and axes: numbers as arrays, labels checked, axes labelled."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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


def _label_axes(ax, xlabel: str, ylabel: str, title: str | None, logy: bool = False) -> None:
    """Axis labels, a title ("ylabel vs xlabel" by default), a light grid; log y when asked."""
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title if title is not None else f"{ylabel} vs {xlabel}")
    ax.grid(alpha=0.3)
