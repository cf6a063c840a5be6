"""Scaling: measured costs against a size, with polynomial or power-law fits (pure functions
that notebooks assert on, and the plot that shows them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np

from ._common import _label_axes, _to_numpy


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
    _label_axes(ax, xlabel, ylabel, title, logy)
    ax.legend(fontsize=8)
    return ax

